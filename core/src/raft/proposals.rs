//! This node's requests that are proposed but not yet answered.
//!
//! Requests are keyed by their request id within this node's session (the
//! state machine answers retries by `(session, request_id)`), never matched
//! by position. A proposal that may have been dropped (no leader, a leader
//! change, or no answer for a while) is proposed again with the *same* id;
//! the state machine answers the retry with the first result.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::client::grant::Grant;
use crate::client::guard::LockGuard;
use crate::error::Error;
use crate::machine::{Claim, Command, Outcome};
use crate::types::{LockName, RequestId};

/// What an acquire ends in, as the driver reports it to the caller: a
/// mutex acquire's guard is a `LockGuard`, a claims acquire's a `Grant`.
#[derive(Debug)]
pub(crate) enum AcquireReply<G = LockGuard> {
    /// Granted: here is the guard.
    Granted(G),
    /// `try_lock` found it held.
    Busy,
    /// The session ended before the grant; the caller retries under the next one.
    SessionEnded,
}

/// What an acquire asks for, and where its answer goes.
#[derive(Debug)]
pub(crate) enum Ask {
    /// A mutex acquire (`lock`, `try_lock`, `campaign`).
    Lock {
        lock: LockName,
        reply: oneshot::Sender<Result<AcquireReply, Error>>,
    },
    /// A claims acquire (issue 11: permits, read/write locks, multi-locks).
    Claims {
        claims: Vec<Claim>,
        reply: oneshot::Sender<Result<AcquireReply<Grant>, Error>>,
    },
}

impl Ask {
    /// Answers the caller with `err`.
    pub(crate) fn fail(self, err: Error) {
        match self {
            Self::Lock { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::Claims { reply, .. } => {
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Tells the caller its session ended before a grant (it asks again).
    pub(crate) fn session_ended(self) {
        match self {
            Self::Lock { reply, .. } => {
                let _ = reply.send(Ok(AcquireReply::SessionEnded));
            }
            Self::Claims { reply, .. } => {
                let _ = reply.send(Ok(AcquireReply::SessionEnded));
            }
        }
    }
}

/// Who waits for a request's answer.
#[derive(Debug)]
pub(crate) enum Waiter {
    Acquire {
        ticket: u64,
        ask: Ask,
    },
    Release {
        reply: Option<oneshot::Sender<Result<bool, Error>>>,
    },
    /// A cancel of the abandoned acquire `target`: nobody waits.
    Cancel {
        target: RequestId,
    },
    /// An acquire whose caller is gone; kept until its cancel commits.
    Abandoned,
}

/// One outstanding request.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) cmd: Command,
    pub(crate) waiter: Waiter,
    /// When and in which term it was last proposed.
    pub(crate) proposed: Option<(Instant, u64)>,
    /// The state machine queued it: wait for the grant, stop proposing.
    /// Set only through [`Proposals::mark_queued`], which keeps the floor's
    /// index in step (so private to this module).
    queued: bool,
    pub(crate) created: Instant,
    /// It was handed to Raft at least once, so it may commit.
    pub(crate) ever_proposed: bool,
    /// A cancel for it was issued.
    pub(crate) cancel_sent: bool,
}

impl Pending {
    /// A request just made: not proposed, not queued.
    pub(crate) fn new(cmd: Command, waiter: Waiter, now: Instant) -> Self {
        Self {
            cmd,
            waiter,
            proposed: None,
            queued: false,
            created: now,
            ever_proposed: false,
            cancel_sent: false,
        }
    }
}

/// Outstanding requests of this node's current session, by request id.
#[derive(Debug, Default)]
pub(crate) struct Proposals {
    map: BTreeMap<RequestId, Pending>,
    /// The outstanding requests not queued by the table, so that
    /// [`Proposals::floor`] is its first element, O(log n), instead of a
    /// scan past every parked waiter on each proposal (issue 10: 10 000
    /// waiters parked behind one lock made every proposal visit them all).
    /// Invariant: exactly the keys of `map` whose `queued` is false.
    open: BTreeSet<RequestId>,
    /// Acquire tickets -> their request, both ways, so `by_ticket` is a
    /// lookup: 10 000 callers giving up together scanned all pending
    /// requests each (issue 8 item 10).
    tickets: BTreeMap<u64, RequestId>,
    ticket_of: BTreeMap<RequestId, u64>,
}

impl Proposals {
    pub(crate) fn insert(&mut self, request: RequestId, pending: Pending) {
        if let Waiter::Acquire { ticket, .. } = pending.waiter {
            self.tickets.insert(ticket, request);
            self.ticket_of.insert(request, ticket);
        }
        if pending.queued {
            self.open.remove(&request);
        } else {
            self.open.insert(request);
        }
        self.map.insert(request, pending);
    }

    /// The table queued `request` (or its caller is gone and only its
    /// cancel is awaited): it is never proposed again and no longer holds
    /// the floor down.
    pub(crate) fn mark_queued(&mut self, request: RequestId) {
        if let Some(p) = self.map.get_mut(&request) {
            p.queued = true;
            self.open.remove(&request);
        }
    }

    pub(crate) fn get_mut(&mut self, request: RequestId) -> Option<&mut Pending> {
        self.map.get_mut(&request)
    }

    pub(crate) fn remove(&mut self, request: RequestId) -> Option<Pending> {
        if let Some(ticket) = self.ticket_of.remove(&request) {
            self.tickets.remove(&ticket);
        }
        self.open.remove(&request);
        self.map.remove(&request)
    }

    /// The acknowledgement floor: the lowest request that may still be
    /// proposed (again), or `next` when there is none. The table forgets
    /// the outcomes below it.
    ///
    /// A request the table has queued (a parked waiter) is never proposed
    /// again: its state lives in the lock's queue and the session's
    /// `waiting`, and its grant or end arrives as an effect. So it does not
    /// hold the floor down; if it did, one waiter parked for hours would
    /// make the table keep every later outcome of its session (issue 8,
    /// item 4). A duplicate of it that commits late is below the floor and
    /// ignored.
    pub(crate) fn floor(&self, next: RequestId) -> RequestId {
        self.open.first().copied().unwrap_or(next)
    }

    /// Requests of `unlock` callers (with a reply waiting) older than `age`.
    pub(crate) fn releases_older_than(&self, now: Instant, age: Duration) -> Vec<RequestId> {
        self.map
            .iter()
            .filter(|(_, p)| {
                matches!(p.waiter, Waiter::Release { reply: Some(_) })
                    && now.saturating_duration_since(p.created) >= age
            })
            .map(|(r, _)| *r)
            .collect()
    }

    /// Requests to (re)propose now: never proposed, proposed in an older
    /// term, or unanswered for `retry_after`.
    pub(crate) fn due(&self, now: Instant, term: u64, retry_after: Duration) -> Vec<RequestId> {
        self.map
            .iter()
            .filter(|(_, p)| {
                !p.queued
                    && match p.proposed {
                        None => true,
                        Some((at, t)) => {
                            t != term || now.saturating_duration_since(at) >= retry_after
                        }
                    }
            })
            .map(|(r, _)| *r)
            .collect()
    }

    /// The request that carries acquire `ticket`, if still outstanding.
    /// A lookup: the request is found through the ticket index, and only
    /// while its caller still waits (an abandoned acquire is not found).
    pub(crate) fn by_ticket(&self, ticket: u64) -> Option<RequestId> {
        crate::machine::cost::step(1);
        let request = *self.tickets.get(&ticket)?;
        match self.map.get(&request)?.waiter {
            Waiter::Acquire { ticket: t, .. } if t == ticket => Some(request),
            _ => None,
        }
    }

    /// Takes every outstanding request out.
    pub(crate) fn drain(&mut self) -> Vec<(RequestId, Pending)> {
        self.tickets.clear();
        self.ticket_of.clear();
        self.open.clear();
        std::mem::take(&mut self.map).into_iter().collect()
    }

    /// Request ids of acquires (with a caller waiting) older than `age`.
    pub(crate) fn acquires_older_than(&self, now: Instant, age: Duration) -> Vec<RequestId> {
        self.map
            .iter()
            .filter(|(_, p)| {
                matches!(p.waiter, Waiter::Acquire { .. })
                    && now.saturating_duration_since(p.created) >= age
            })
            .map(|(r, _)| *r)
            .collect()
    }

    /// Whether `request` is outstanding and queued by the table.
    /// How many requests are outstanding.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// How many of them the table queued behind a holder (waiters).
    pub(crate) fn queued_len(&self) -> usize {
        self.map.len() - self.open.len()
    }

    pub(crate) fn is_queued(&self, request: RequestId) -> bool {
        self.map.get(&request).is_some_and(|p| p.queued)
    }

    pub(crate) fn ids(&self) -> Vec<RequestId> {
        self.map.keys().copied().collect()
    }
}

/// The error an acquire's outcome stands for, if it is one: the table is
/// full, or the name is another kind of primitive (issue 11).
pub(crate) fn acquire_error(outcome: Outcome, lock: &LockName) -> Option<Error> {
    match outcome {
        Outcome::TableFull => Some(Error::TableFull {
            limit: crate::machine::MAX_LOCK_ENTRIES,
        }),
        Outcome::WrongKind { actual, .. } => Some(Error::WrongKind {
            name: lock.as_str().to_owned(),
            actual: match actual {
                crate::machine::NameKind::Lock => "a lock".to_owned(),
                crate::machine::NameKind::Semaphore { count } => {
                    format!("a semaphore of {count} permits")
                }
            },
        }),
        Outcome::Invalid(e) => Some(Error::InvalidRequest {
            reason: e.to_string(),
        }),
        _ => None,
    }
}

/// [`acquire_error`] for a claims acquire: a `WrongKind` names the claim's
/// name by its position in `claims`.
pub(crate) fn claims_error(outcome: Outcome, claims: &[Claim]) -> Option<Error> {
    let at = match outcome {
        Outcome::WrongKind { claim, .. } => usize::from(claim),
        _ => 0,
    };
    let name = claims.get(at).or(claims.first()).map(|c| &c.lock)?;
    acquire_error(outcome, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::RequestKey;
    use crate::types::SessionId;

    /// Issue 11: an acquire answered `WrongKind` or `Invalid` is a typed
    /// error, not a lost session (which the acquire loop would retry for
    /// ever).
    #[test]
    fn new_outcomes_are_typed_errors_not_a_lost_session() {
        let name = LockName::new("pay").unwrap();
        let wrong = Outcome::WrongKind {
            claim: 0,
            actual: crate::machine::NameKind::Semaphore { count: 8 },
        };
        let e = acquire_error(wrong, &name).unwrap();
        assert!(e.to_string().contains("a semaphore of 8 permits"), "{e}");
        let e = acquire_error(Outcome::Invalid(crate::machine::ClaimError::Empty), &name);
        assert!(matches!(e, Some(Error::InvalidRequest { .. })));
        assert!(matches!(
            acquire_error(Outcome::TableFull, &name),
            Some(Error::TableFull { .. })
        ));
        assert!(acquire_error(Outcome::Busy, &name).is_none());
    }

    fn pending(now: Instant) -> Pending {
        Pending {
            cmd: Command::Cancel {
                key: RequestKey {
                    session: SessionId(1),
                    request: RequestId(1),
                    floor: RequestId(1),
                },
                target: RequestId(0),
            },
            waiter: Waiter::Abandoned,
            proposed: None,
            queued: false,
            created: now,
            ever_proposed: false,
            cancel_sent: false,
        }
    }

    /// STYLE practice 5: dropped proposals are retried with the same id.
    #[test]
    fn retries_after_term_change_or_silence_and_floor_is_lowest_outstanding() {
        let t0 = Instant::now();
        let mut p = Proposals::default();
        p.insert(RequestId(5), pending(t0));
        p.insert(RequestId(7), pending(t0));
        assert_eq!(p.floor(RequestId(9)), RequestId(5));
        assert_eq!(p.due(t0, 1, Duration::from_secs(1)).len(), 2);
        for r in [RequestId(5), RequestId(7)] {
            p.get_mut(r).unwrap().proposed = Some((t0, 1));
        }
        assert!(p.due(t0, 1, Duration::from_secs(1)).is_empty());
        assert_eq!(
            p.due(t0, 2, Duration::from_secs(1)).len(),
            2,
            "term changed"
        );
        assert_eq!(
            p.due(t0 + Duration::from_secs(1), 1, Duration::from_secs(1))
                .len(),
            2
        );
        p.mark_queued(RequestId(5));
        assert_eq!(
            p.floor(RequestId(9)),
            RequestId(7),
            "a queued request does not hold the floor"
        );
        assert_eq!(p.due(t0, 2, Duration::from_secs(1)), vec![RequestId(7)]);
        p.remove(RequestId(5));
        assert_eq!(p.floor(RequestId(9)), RequestId(7));
        p.remove(RequestId(7));
        assert_eq!(p.floor(RequestId(9)), RequestId(9));
    }

    fn acquire(ticket: u64, now: Instant) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending {
            waiter: Waiter::Acquire {
                ticket,
                ask: Ask::Lock {
                    lock: LockName::new("x").unwrap(),
                    reply,
                },
            },
            ..pending(now)
        }
    }

    /// Issue 8 item 10: 10 000 acquires whose callers give up together.
    /// Finding each one's request by its ticket is one lookup, not a scan
    /// of every pending request (50 million visits here). An abandoned
    /// acquire is no longer found by its ticket, and removed requests leave
    /// nothing behind in the index.
    #[test]
    fn issue_8_ticket_lookup_is_one_step_per_abandoned_acquire() {
        const N: u64 = 10_000;
        let t0 = Instant::now();
        let mut p = Proposals::default();
        for i in 1..=N {
            p.insert(RequestId(i), acquire(1_000 + i, t0));
        }
        crate::machine::cost::take();
        for i in (1..=N).rev() {
            assert_eq!(p.by_ticket(1_000 + i), Some(RequestId(i)));
            if i % 2 == 0 {
                p.get_mut(RequestId(i)).unwrap().waiter = Waiter::Abandoned;
                assert_eq!(p.by_ticket(1_000 + i), None, "abandoned");
            }
        }
        let steps = crate::machine::cost::take();
        assert!(steps <= 2 * N, "{steps} steps for {N} ticket lookups");
        for i in 1..=N {
            p.remove(RequestId(i));
        }
        assert!(p.tickets.is_empty() && p.ticket_of.is_empty());
        p.insert(RequestId(1), acquire(7, t0));
        assert_eq!(p.drain().len(), 1);
        assert_eq!(p.by_ticket(7), None);
    }

    /// Issue 10: the floor is the lowest request not queued, found without
    /// visiting the queued ones, and it agrees with a scan of the map
    /// through inserts, queueing and removals in any order.
    #[test]
    fn issue_10_floor_agrees_with_a_scan_and_skips_queued_in_log_time() {
        const N: u64 = 10_000;
        let t0 = Instant::now();
        let mut p = Proposals::default();
        let scan = |p: &Proposals, next: RequestId| {
            p.map
                .iter()
                .find(|(_, x)| !x.queued)
                .map_or(next, |(r, _)| *r)
        };
        for i in 1..=N {
            p.insert(RequestId(i), pending(t0));
            if i < N {
                p.mark_queued(RequestId(i));
            }
        }
        assert_eq!(p.floor(RequestId(N + 1)), RequestId(N));
        // A pseudo-random walk of removals, queueings and inserts.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = RequestId(1 + x % (N + 50));
            match step % 3 {
                0 => {
                    p.remove(r);
                }
                1 => p.mark_queued(r),
                _ => {
                    if p.get_mut(r).is_none() {
                        p.insert(r, pending(t0));
                    }
                }
            }
            assert_eq!(p.floor(RequestId(N + 100)), scan(&p, RequestId(N + 100)));
        }
        p.mark_queued(RequestId(N + 500)); // unknown: no effect
        assert_eq!(p.open.len(), p.map.values().filter(|x| !x.queued).count());
        p.drain();
        assert_eq!(p.floor(RequestId(3)), RequestId(3));
    }
}
