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
}
