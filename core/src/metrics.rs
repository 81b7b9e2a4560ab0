//! The metrics catalog (issue 12, item 1): every name peerlock records,
//! through the `metrics` facade only. The application installs whatever
//! exporter it likes (peerlock installs none; without one every call is a
//! no-op), and calls [`describe`] once if it wants help texts and units.
//!
//! The set follows what etcd's operators watch (its "Monitoring etcd"
//! guide and its alerting rules: no leader, frequent leader changes,
//! failing proposals, slow fsync and commit, slow peers, snapshots) and
//! adds the lock-level view a lock service's users ask for (waiters, wait
//! and hold times, lost leases).
//!
//! Cardinality stays bounded: labels take values from small fixed sets
//! (`kind`, `outcome`, `role`, `reason`) and never a lock or node name.
//! Histograms are in seconds; byte counts are counters in bytes.
//!
//! Each constant says its type, unit, labels, and the alert it serves.
//! [`ALL`] lists every name, so a test can check that an exporter shows
//! the whole catalog.

mod record;
#[cfg(test)]
mod tests;

pub(crate) use record::*;

// ---- Raft: leadership, log, proposals ------------------------------------

/// Gauge, 0 or 1: whether this node knows a leader.
/// Alert: `max(peerlock_has_leader) == 0` for a minute (no leader: no
/// lock can be granted or released).
pub const HAS_LEADER: &str = "peerlock_has_leader";
/// Counter: how often this node saw a new leader.
/// Alert: `increase(..[1h]) > 3` (leader flapping: slow disks or network).
pub const LEADER_CHANGES: &str = "peerlock_leader_changes_total";
/// Gauge: the Raft term this node is in. Rising without leader changes
/// means elections that fail (a partitioned node campaigning).
pub const TERM: &str = "peerlock_term";
/// Gauge: the highest log index this node knows committed.
/// Alert: not rising while proposals are pending.
pub const COMMIT_INDEX: &str = "peerlock_commit_index";
/// Gauge: the highest log index this node applied to the lock table.
/// Alert: `peerlock_commit_index - peerlock_applied_index` growing (the
/// node falls behind applying).
pub const APPLIED_INDEX: &str = "peerlock_applied_index";
/// Counter: committed log entries this node applied.
/// Dashboard: the cluster's write rate.
pub const PROPOSALS_COMMITTED: &str = "peerlock_proposals_committed_total";
/// Counter: proposals Raft refused (no leader known, or leadership in
/// transfer); each is retried.
/// Alert: `rate(..[5m]) > 0` for long (proposals failing).
pub const PROPOSALS_FAILED: &str = "peerlock_proposals_failed_total";
/// Gauge: this node's requests proposed or waiting to be, not yet answered.
/// Alert: high and rising (the cluster does not keep up, or has no quorum).
pub const PROPOSALS_PENDING: &str = "peerlock_proposals_pending";
/// Histogram, seconds: one fsync of the Raft log (durable storage only).
/// Alert: p99 > 10 ms (etcd's bound: a slow disk delays every commit
/// and, past the election timeout, costs leadership).
pub const FSYNC_SECONDS: &str = "peerlock_fsync_duration_seconds";
/// Histogram, seconds: from this node's proposal to its apply (the commit
/// round trip through the leader, fsyncs included).
/// Alert: p99 > 250 ms.
pub const COMMIT_SECONDS: &str = "peerlock_commit_duration_seconds";
/// Histogram, seconds: the QUIC round trip to a peer (quinn's estimate,
/// sampled at most once a second per peer while messages flow).
/// Alert: p99 > 50 ms within one site (a slow network loses elections).
pub const PEER_RTT_SECONDS: &str = "peerlock_peer_round_trip_seconds";
/// Counter: Raft snapshots this node sent to a lagging peer.
/// Alert: `increase(..[1h]) > 5` (a peer keeps falling behind the log).
pub const SNAPSHOTS_SENT: &str = "peerlock_snapshots_sent_total";
/// Counter, bytes: the size of the snapshots this node sent.
pub const SNAPSHOT_SENT_BYTES: &str = "peerlock_snapshot_sent_bytes_total";
/// Counter: Raft snapshots this node installed to catch up.
/// Alert: rising on one node (it keeps falling behind).
pub const SNAPSHOTS_INSTALLED: &str = "peerlock_snapshots_installed_total";
/// Counter, bytes: the size of the snapshots this node installed.
pub const SNAPSHOT_INSTALLED_BYTES: &str = "peerlock_snapshot_installed_bytes_total";

// ---- Membership (leader only) ---------------------------------------------

/// Gauge, labels `role` = `voter` | `learner`: members in the
/// configuration, as the leader sees it (only the leader sets it).
/// Alert: `peerlock_members{role="voter"} < peerlock_voters_target`.
pub const MEMBERS: &str = "peerlock_members";
/// Gauge: voters that answered the leader within two election timeouts
/// (leader only). Alert when it is below a majority of
/// `peerlock_members{role="voter"}`.
pub const VOTERS_LIVE: &str = "peerlock_voters_live";
/// Gauge: the number of voters the leader aims for (leader only). Alert
/// when `peerlock_members{role="voter"}` stays below it: no spare learner.
pub const VOTERS_TARGET: &str = "peerlock_voters_target";
/// Counter, label `kind` (`add_learner`, `promote`, `demote`, `remove`,
/// `transfer_leader`, ..): membership changes the leader proposed.
/// Alert: `increase(..[1h]) > 10` (members flapping).
pub const MEMBERSHIP_CHANGES: &str = "peerlock_membership_changes_total";
/// Counter, label `reason`: planner runs that wanted a change and waited.
pub const MEMBERSHIP_SKIPS: &str = "peerlock_membership_skips_total";

// ---- Sessions and leases ----------------------------------------------------

/// Gauge: sessions open in the lock table (every node's, as this node
/// applied them). Alert: a drop by the sessions of a whole node.
pub const SESSIONS: &str = "peerlock_sessions";
/// Counter: sessions this node expired while leading (their holders
/// missed keepalives for a TTL). Alert: `increase(..[10m]) > 0` (a holder
/// paused, crashed or was cut off; its locks were taken from it).
pub const SESSIONS_EXPIRED: &str = "peerlock_sessions_expired_total";
/// Histogram, seconds: a keepalive of this node's session, from send to
/// the leader's acknowledgement. Alert: p99 above a third of the TTL
/// (the lease is at risk).
pub const KEEPALIVE_RTT_SECONDS: &str = "peerlock_keepalive_round_trip_seconds";
/// Gauge, seconds: how long this node's lease still holds as it last
/// renewed it (0 without a lease). Alert: < 25 % of the TTL for a minute.
pub const LEASE_REMAINING_SECONDS: &str = "peerlock_lease_remaining_seconds";

// ---- Locks of this node's callers --------------------------------------------

/// Counter, labels `kind` = `mutex` (also elections and `with_lock`) |
/// `semaphore` | `read` | `write` | `multi` and `outcome` = `granted` | `timeout` | `busy` |
/// `error`: this node's callers' acquire calls by how they ended.
/// Alert: `rate(..{outcome="error"}[5m]) > 0`; a rising `timeout` share.
pub const ACQUIRES: &str = "peerlock_acquires_total";
/// Histogram, seconds, label `kind`: how long a granted acquire waited,
/// from the call to the grant. Alert: p99 above what callers can wait
/// (contention, or a holder that does not let go).
pub const ACQUIRE_WAIT_SECONDS: &str = "peerlock_acquire_wait_seconds";
/// Histogram, seconds: how long this node's callers held a grant, from
/// the grant to the guard's release or drop. Alert: p99 near the TTL.
pub const HOLD_SECONDS: &str = "peerlock_hold_seconds";
/// Counter: grants handed to this node's callers (every kind).
pub const LOCKS_GRANTED: &str = "peerlock_locks_granted_total";
/// Counter: grants this node's callers released or dropped.
pub const LOCKS_RELEASED: &str = "peerlock_locks_released_total";
/// Gauge: grants this node's callers hold now (guards alive).
/// Alert: rising without bound (guards leaked).
pub const LOCKS_HELD: &str = "peerlock_locks_held";
/// Gauge: this node's acquires queued behind a holder now.
/// Alert: high for long (a lock everyone waits on).
pub const WAITERS: &str = "peerlock_waiters";
/// Counter: grants whose holder was told the lease may be gone (`lost()`
/// completed or `is_held()` turned false while held). Alert: `> 0`
/// (work under the lock may have run past its fence).
pub const LOCKS_LOST: &str = "peerlock_locks_lost_total";
/// Counter: locks freed by a session's expiry that the leader held back
/// for the lock delay before handing them on (leader only).
pub const LOCK_DELAY_HANDOFFS: &str = "peerlock_lock_delay_handoffs_total";

/// Every name above, so a test (or an operator's check) can find each
/// one in an exporter's output.
pub const ALL: &[&str] = &[
    HAS_LEADER,
    LEADER_CHANGES,
    TERM,
    COMMIT_INDEX,
    APPLIED_INDEX,
    PROPOSALS_COMMITTED,
    PROPOSALS_FAILED,
    PROPOSALS_PENDING,
    FSYNC_SECONDS,
    COMMIT_SECONDS,
    PEER_RTT_SECONDS,
    SNAPSHOTS_SENT,
    SNAPSHOT_SENT_BYTES,
    SNAPSHOTS_INSTALLED,
    SNAPSHOT_INSTALLED_BYTES,
    MEMBERS,
    VOTERS_LIVE,
    VOTERS_TARGET,
    MEMBERSHIP_CHANGES,
    MEMBERSHIP_SKIPS,
    SESSIONS,
    SESSIONS_EXPIRED,
    KEEPALIVE_RTT_SECONDS,
    LEASE_REMAINING_SECONDS,
    ACQUIRES,
    ACQUIRE_WAIT_SECONDS,
    HOLD_SECONDS,
    LOCKS_GRANTED,
    LOCKS_RELEASED,
    LOCKS_HELD,
    WAITERS,
    LOCKS_LOST,
    LOCK_DELAY_HANDOFFS,
];

/// Registers help texts and units for every metric with the installed
/// recorder (call it once, after installing the recorder).
pub fn describe() {
    use metrics::Unit::{Bytes, Count, Seconds};
    use metrics::{describe_counter as c, describe_gauge as g, describe_histogram as h};
    g!(HAS_LEADER, "1 if this node knows a raft leader, else 0");
    c!(LEADER_CHANGES, Count, "new raft leaders this node saw");
    g!(TERM, "the raft term of this node");
    g!(COMMIT_INDEX, "highest raft log index known committed");
    g!(
        APPLIED_INDEX,
        "highest raft log index applied to the lock table"
    );
    c!(PROPOSALS_COMMITTED, Count, "committed entries applied");
    c!(PROPOSALS_FAILED, Count, "proposals raft refused");
    g!(PROPOSALS_PENDING, "this node's requests not yet answered");
    h!(FSYNC_SECONDS, Seconds, "one fsync of the raft log");
    h!(
        COMMIT_SECONDS,
        Seconds,
        "a proposal of this node to its apply"
    );
    h!(PEER_RTT_SECONDS, Seconds, "QUIC round trip to a peer");
    c!(
        SNAPSHOTS_SENT,
        Count,
        "raft snapshots sent to lagging peers"
    );
    c!(SNAPSHOT_SENT_BYTES, Bytes, "bytes of raft snapshots sent");
    c!(
        SNAPSHOTS_INSTALLED,
        Count,
        "raft snapshots installed to catch up"
    );
    c!(
        SNAPSHOT_INSTALLED_BYTES,
        Bytes,
        "bytes of raft snapshots installed"
    );
    g!(MEMBERS, "members in the raft configuration, by role");
    g!(VOTERS_LIVE, "voters live at the leader");
    g!(VOTERS_TARGET, "voters the leader aims for");
    c!(
        MEMBERSHIP_CHANGES,
        "membership changes proposed by the leader, by kind"
    );
    c!(
        MEMBERSHIP_SKIPS,
        "membership changes wanted but held back, by reason"
    );
    g!(SESSIONS, "sessions open in the lock table");
    c!(
        SESSIONS_EXPIRED,
        Count,
        "sessions expired by this node while it led"
    );
    h!(
        KEEPALIVE_RTT_SECONDS,
        Seconds,
        "keepalive send to acknowledgement"
    );
    g!(
        LEASE_REMAINING_SECONDS,
        Seconds,
        "how long this node's lease still holds"
    );
    c!(ACQUIRES, Count, "acquire calls by kind and outcome");
    h!(
        ACQUIRE_WAIT_SECONDS,
        Seconds,
        "wait of a granted acquire, by kind"
    );
    h!(HOLD_SECONDS, Seconds, "grant to release of a lock");
    c!(LOCKS_GRANTED, Count, "grants handed to this node's callers");
    c!(
        LOCKS_RELEASED,
        Count,
        "grants released or dropped by this node's callers"
    );
    g!(LOCKS_HELD, "grants this node's callers hold");
    g!(WAITERS, "this node's acquires queued behind a holder");
    c!(
        LOCKS_LOST,
        Count,
        "grants whose lease may be gone (lost() notices)"
    );
    c!(
        LOCK_DELAY_HANDOFFS,
        Count,
        "freed locks held back for the lock delay"
    );
}
