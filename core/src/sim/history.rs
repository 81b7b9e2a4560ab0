//! What a test observed: client operations with their start and end in
//! true time, probes of `is_held()`, writes to a fenced resource, and (in
//! the simulator) the committed log.
//!
//! Every test of safety records a [`History`] and hands it to
//! [`check`](super::check). Times are offsets from the test's start on one
//! monotonic clock: the simulator's true time, or the test process's
//! `Instant` for real processes on one machine.

use std::time::Duration;

use crate::machine::{Claim, Command, Effect};
use crate::types::NodeId;

/// Identifies one operation within a history (unique per history).
pub type OpId = u64;

/// An operation a client invoked on a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `lock` / `lock_timeout`: waits in the queue.
    Acquire,
    /// `try_lock`: never waits.
    TryAcquire,
    /// `unlock` of the guard granted with `token`.
    Release {
        /// The token of the guard being released.
        token: u64,
    },
    /// `holder`: a linearizable read.
    Holder,
    /// `acquire_claims` / `acquire_claims_timeout` (`wait`) or
    /// `try_acquire_claims` (issue 11): all the claims in one grant. The
    /// event's `lock` is a label; the names are the claims'.
    Claims {
        /// What was asked for.
        claims: Vec<Claim>,
        /// Whether it waits in the queues (false: a `try_`).
        wait: bool,
    },
    /// The release of the claims grant with `token`.
    ReleaseGrant {
        /// The grant's token.
        token: u64,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An acquire or try succeeded with this fencing token.
    Granted {
        /// The guard's token.
        token: u64,
    },
    /// A try found the lock held.
    Busy,
    /// The release was acknowledged: the lock was freed by it.
    Released,
    /// The release found the guard no longer current (its lease was lost).
    NotHeld,
    /// A leader resigned (`Leadership::resign` answered `Ok`): the name
    /// was freed by it, or the term had already ended (the public API does
    /// not tell which), so it constrains no order.
    Resigned,
    /// `holder` answered: the current grant's token, or free.
    Holder {
        /// The token of the grant that holds the lock, if any.
        token: Option<u64>,
    },
    /// The operation failed or timed out: it may or may not have taken
    /// effect (indeterminate, like Jepsen's `:info`).
    Failed {
        /// The error, for the report.
        error: String,
    },
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An operation began.
    Invoke {
        /// Its id; the matching `Complete` carries the same.
        op: OpId,
        /// What was called.
        call: Call,
    },
    /// An operation ended. An operation with no `Complete` was cut short
    /// (its node crashed): treat it as indeterminate.
    Complete {
        /// The id from its `Invoke`.
        op: OpId,
        /// How it ended.
        outcome: Outcome,
    },
    /// A probe of `is_held()` on the guard with `token`, at `Event::at`.
    Held {
        /// The guard's token.
        token: u64,
        /// What `is_held()` returned.
        held: bool,
    },
    /// A probe of `is_leader()` on the leadership with `token` (the
    /// election's name is the event's `lock`), at `Event::at`; also
    /// recorded `false` when `lost()` completed.
    Leader {
        /// The term of office's token.
        token: u64,
        /// What `is_leader()` returned.
        leader: bool,
    },
    /// A probe of `is_held()` on the claims grant with `token` (its claims
    /// are those of the `Claims` call that was granted `token`).
    ClaimsHeld {
        /// The grant's token.
        token: u64,
        /// What `is_held()` returned.
        held: bool,
    },
    /// A write to the lock's fenced resource with `token`: the resource
    /// accepts only tokens at least the highest it has seen.
    Write {
        /// The writer's token.
        token: u64,
        /// Whether the resource accepted it.
        accepted: bool,
    },
}

/// One event of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// True time since the test began.
    pub at: Duration,
    /// The client process (one per simulated or real node client task).
    pub process: u32,
    /// The lock the event is about.
    pub lock: String,
    /// What happened.
    pub kind: EventKind,
}

/// One committed entry, as first applied by any node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its Raft index (the fencing token of any grant it made).
    pub index: u64,
    /// True time at which the first node applied it.
    pub at: Duration,
    /// The command, or `None` for an entry that carries none (an empty
    /// leader entry or one that did not decode).
    pub command: Option<Command>,
    /// What applying it produced.
    pub effects: Vec<Effect>,
}

/// A node's final state, for the convergence check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalState {
    /// The node.
    pub node: NodeId,
    /// Its applied index.
    pub applied: u64,
    /// `LockTable::state_hash` at that index.
    pub hash: u64,
}

/// Everything one run observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Client events in the order they were recorded (non-decreasing `at`).
    pub events: Vec<Event>,
    /// The committed log in index order, where the test can see it (the
    /// simulator); empty for real processes. Entries covered by a snapshot
    /// before any node applied them one by one may be missing.
    pub log: Vec<Committed>,
    /// Settings the log checks need.
    pub params: Params,
    /// Final states of the live nodes after healing (simulator only).
    pub finals: Vec<FinalState>,
}

/// Settings of the run that the checks need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// The session TTL.
    pub ttl: Duration,
    /// The lock-delay after an expiry.
    pub lock_delay: Duration,
    /// The largest clock-rate deviation of any node from true time, in
    /// parts per million; S4 is only promised while this stays within the
    /// lease margin's bound.
    pub max_clock_drift_ppm: u64,
    /// Whether S4 is promised in this run (clock skew within the bound).
    pub expect_s4: bool,
}

impl History {
    /// Records `kind` at `at`.
    pub fn push(&mut self, at: Duration, process: u32, lock: &str, kind: EventKind) {
        self.events.push(Event {
            at,
            process,
            lock: lock.to_owned(),
            kind,
        });
    }

    /// Merges histories recorded separately on one clock (e.g. one per
    /// real process), keeping events in time order.
    pub fn merge(parts: Vec<History>) -> History {
        let mut out = History::default();
        for p in parts {
            out.events.extend(p.events);
            out.log.extend(p.log);
            out.finals.extend(p.finals);
            out.params = p.params;
        }
        out.events.sort_by_key(|e| e.at);
        out.log.sort_by_key(|c| c.index);
        out
    }
}
