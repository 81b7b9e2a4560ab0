//! Metric names, through the `metrics` facade only: the application
//! installs whatever exporter it likes (peerlock installs none), and calls
//! [`describe`] once if it wants help texts.

/// Locks granted to this node's callers.
pub const LOCKS_GRANTED: &str = "peerlock_locks_granted_total";
/// Sessions this node expired while leading.
pub const SESSIONS_EXPIRED: &str = "peerlock_sessions_expired_total";
/// Raft snapshots this node installed to catch up.
pub const SNAPSHOTS_INSTALLED: &str = "peerlock_snapshots_installed_total";
/// The highest log index this node applied.
pub const APPLIED_INDEX: &str = "peerlock_applied_index";

/// Members in the configuration, by `role` (`voter`, `learner`), as the
/// leader sees it (gauge; only the leader sets it).
pub const MEMBERS: &str = "peerlock_members";
/// Voters that answered the leader within two election timeouts (gauge,
/// leader only). Alert when it is below a majority of `peerlock_members{role="voter"}`.
pub const VOTERS_LIVE: &str = "peerlock_voters_live";
/// The number of voters the leader aims for (gauge, leader only). Alert
/// when `peerlock_members{role="voter"}` stays below it: no spare learner.
pub const VOTERS_TARGET: &str = "peerlock_voters_target";
/// Membership changes the leader proposed, by `kind` (counter).
pub const MEMBERSHIP_CHANGES: &str = "peerlock_membership_changes_total";
/// Planner runs that wanted a change and waited, by `reason` (counter).
pub const MEMBERSHIP_SKIPS: &str = "peerlock_membership_skips_total";

/// Registers help texts for every metric with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(LOCKS_GRANTED, "locks granted to this node's callers");
    metrics::describe_counter!(
        SESSIONS_EXPIRED,
        "sessions expired by this node while it led"
    );
    metrics::describe_counter!(SNAPSHOTS_INSTALLED, "raft snapshots installed to catch up");
    metrics::describe_gauge!(
        APPLIED_INDEX,
        "highest raft log index applied to the lock table"
    );
    metrics::describe_gauge!(MEMBERS, "members in the raft configuration, by role");
    metrics::describe_gauge!(VOTERS_LIVE, "voters live at the leader");
    metrics::describe_gauge!(VOTERS_TARGET, "voters the leader aims for");
    metrics::describe_counter!(
        MEMBERSHIP_CHANGES,
        "membership changes proposed by the leader, by kind"
    );
    metrics::describe_counter!(
        MEMBERSHIP_SKIPS,
        "membership changes wanted but held back, by reason"
    );
}
