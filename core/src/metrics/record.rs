//! What the recording sites call, so each site stays one line and the
//! names, labels and units live beside the catalog.
//!
//! Every call here is a `metrics` macro: without an installed recorder it
//! is a load and a branch (the facade's no-op recorder), and nothing here
//! allocates or formats. Sites on the driver's per-entry path count once
//! per batch (`applied`).

use std::time::Duration;

use super::*;

/// Which public call an acquire came through (label `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Mutex,
    Semaphore,
    Read,
    Write,
    Multi,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Mutex,
        Kind::Semaphore,
        Kind::Read,
        Kind::Write,
        Kind::Multi,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Mutex => "mutex",
            Kind::Semaphore => "semaphore",
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Multi => "multi",
        }
    }
}

/// How an acquire call ended (label `outcome`).
const OUTCOMES: [&str; 4] = ["granted", "timeout", "busy", "error"];

/// The membership counters' label values (`Change::kind`,
/// `Skip::as_str` in `membership::change`), registered at zero.
const CHANGE_KINDS: [&str; 5] = [
    "leave_joint",
    "transfer_leader",
    "add_learners",
    "joint",
    "remove",
];
const SKIP_REASONS: [&str; 8] = [
    "not_committed_in_term",
    "pending",
    "leader_not_voter",
    "no_live_majority",
    "settling",
    "stabilizing",
    "min_voters",
    "no_transfer_target",
];

/// Gives every metric of the catalog a first value when a node starts,
/// so an exporter shows the whole catalog at once and `rate()` starts
/// from zero (Prometheus's advice for series with known labels). The
/// leader-only gauges (`MEMBERS`, `VOTERS_*`) are left to the leader: a
/// zero on a follower would read as "no voters".
pub(crate) fn register_all() {
    for name in [
        LEADER_CHANGES,
        PROPOSALS_COMMITTED,
        PROPOSALS_FAILED,
        SNAPSHOTS_SENT,
        SNAPSHOT_SENT_BYTES,
        SNAPSHOTS_INSTALLED,
        SNAPSHOT_INSTALLED_BYTES,
        SESSIONS_EXPIRED,
        LOCKS_GRANTED,
        LOCKS_RELEASED,
        LOCKS_LOST,
        LOCK_DELAY_HANDOFFS,
    ] {
        metrics::counter!(name).increment(0);
    }
    for kind in CHANGE_KINDS {
        metrics::counter!(MEMBERSHIP_CHANGES, "kind" => kind).increment(0);
    }
    for reason in SKIP_REASONS {
        metrics::counter!(MEMBERSHIP_SKIPS, "reason" => reason).increment(0);
    }
    for kind in Kind::ALL {
        for outcome in OUTCOMES {
            metrics::counter!(ACQUIRES, "kind" => kind.as_str(), "outcome" => outcome).increment(0);
        }
        let _ = metrics::histogram!(ACQUIRE_WAIT_SECONDS, "kind" => kind.as_str());
    }
    for name in [
        FSYNC_SECONDS,
        COMMIT_SECONDS,
        PEER_RTT_SECONDS,
        KEEPALIVE_RTT_SECONDS,
        HOLD_SECONDS,
    ] {
        let _ = metrics::histogram!(name);
    }
    for name in [
        HAS_LEADER,
        TERM,
        COMMIT_INDEX,
        APPLIED_INDEX,
        PROPOSALS_PENDING,
        SESSIONS,
        LEASE_REMAINING_SECONDS,
        LOCKS_HELD,
        WAITERS,
    ] {
        metrics::gauge!(name).increment(0.0);
    }
}

/// An acquire call of `kind` ended: counts it by outcome and, when
/// granted, records how long it waited. `granted` is `None` for `busy`.
pub(crate) fn acquire_ended<T, E>(
    kind: Kind,
    waited: Duration,
    result: &Result<Option<T>, E>,
    timed_out: impl Fn(&E) -> bool,
) -> &'static str {
    let outcome = match result {
        Ok(Some(_)) => {
            metrics::histogram!(ACQUIRE_WAIT_SECONDS, "kind" => kind.as_str()).record(waited);
            "granted"
        }
        Ok(None) => "busy",
        Err(e) if timed_out(e) => "timeout",
        Err(_) => "error",
    };
    metrics::counter!(ACQUIRES, "kind" => kind.as_str(), "outcome" => outcome).increment(1);
    outcome
}

/// A grant was handed to one of this node's callers.
pub(crate) fn granted() {
    metrics::counter!(LOCKS_GRANTED).increment(1);
    metrics::gauge!(LOCKS_HELD).increment(1.0);
}

/// A grant's guard went away (released, unlocked or dropped) after
/// `held` (0 when unknown).
pub(crate) fn released(held: Duration) {
    metrics::counter!(LOCKS_RELEASED).increment(1);
    metrics::gauge!(LOCKS_HELD).decrement(1.0);
    metrics::histogram!(HOLD_SECONDS).record(held);
}

/// The driver's view after a loop round whose status changed.
pub(crate) fn status(has_leader: bool, term: u64, commit: u64) {
    metrics::gauge!(HAS_LEADER).set(if has_leader { 1.0 } else { 0.0 });
    metrics::gauge!(TERM).set(term as f64);
    metrics::gauge!(COMMIT_INDEX).set(commit as f64);
}

/// A batch of `n` committed entries was applied, up to `applied`.
pub(crate) fn applied(n: usize, applied: u64) {
    metrics::counter!(PROPOSALS_COMMITTED).increment(n as u64);
    metrics::gauge!(APPLIED_INDEX).set(applied as f64);
}

/// The driver's periodic gauges (once a Raft tick).
pub(crate) fn tick(pending: usize, waiters: usize, sessions: usize, lease: Duration) {
    metrics::gauge!(PROPOSALS_PENDING).set(pending as f64);
    metrics::gauge!(WAITERS).set(waiters as f64);
    metrics::gauge!(SESSIONS).set(sessions as f64);
    metrics::gauge!(LEASE_REMAINING_SECONDS).set(lease.as_secs_f64());
}

/// A Raft message is about to be sent: counts snapshots and their bytes.
pub(crate) fn raft_sent(m: &raft::eraftpb::Message) {
    if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
        metrics::counter!(SNAPSHOTS_SENT).increment(1);
        let bytes = m.get_snapshot().get_data().len() as u64;
        metrics::counter!(SNAPSHOT_SENT_BYTES).increment(bytes);
    }
}

/// A snapshot of `bytes` was installed.
pub(crate) fn snapshot_installed(bytes: usize) {
    metrics::counter!(SNAPSHOTS_INSTALLED).increment(1);
    metrics::counter!(SNAPSHOT_INSTALLED_BYTES).increment(bytes as u64);
}

/// Records one sample of a histogram of the catalog.
pub(crate) fn seconds(name: &'static str, d: Duration) {
    metrics::histogram!(name).record(d);
}

/// Increments one counter of the catalog.
pub(crate) fn count(name: &'static str) {
    metrics::counter!(name).increment(1);
}
