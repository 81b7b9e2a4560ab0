//! Planted bugs (feature `teeth`): the proof that the simulator's checker
//! has teeth. Each [`Bug`] is a small, realistic mistake at one place in
//! the code; a test plants one at a time and runs seeds until the checker
//! reports a violation, and fails if 1,000 seeds pass.
//!
//! A bug is planted per thread (the simulator runs a seed on one thread),
//! so planted and clean runs can share a test binary. Without the feature,
//! [`planted`] is a constant `false` and the compiler removes the bugs.

/// The bugs that can be planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// An expired session's waiters stay queued, and the grant does not
    /// check that the waiter's session still exists.
    GrantWithoutSessionCheck,
    /// Votes and append acknowledgements go out before the fsync that
    /// makes them durable.
    AckBeforeFsync,
    /// The leader acknowledges a keepalive without first confirming with a
    /// quorum that it still leads.
    AckKeepaliveWithoutQuorum,
    /// Tokens handed to guards count from the node's start, so a restart
    /// hands out tokens again.
    TokenReuseAfterRestart,
    /// A freed lock goes to the newest waiter instead of the oldest.
    GrantOutOfFifoOrder,
    /// The holder trusts its lease for the full TTL: no margin for clock
    /// drift.
    ZeroLeaseMargin,
    /// The node judges time (its lease first of all) on a clock that stops
    /// while the host is suspended: the monotonic clock (issue 8 item 8).
    LeaseClockStopsInSuspend,
    /// A blank start that the cluster tells to join as a new member goes
    /// on under its old Raft id instead (a naive rejoin; issue 9).
    ReuseIdOnBlankRestart,
}

impl Bug {
    /// Every bug.
    pub const ALL: [Bug; 8] = [
        Bug::GrantWithoutSessionCheck,
        Bug::AckBeforeFsync,
        Bug::AckKeepaliveWithoutQuorum,
        Bug::TokenReuseAfterRestart,
        Bug::GrantOutOfFifoOrder,
        Bug::ZeroLeaseMargin,
        Bug::LeaseClockStopsInSuspend,
        Bug::ReuseIdOnBlankRestart,
    ];
}

#[cfg(feature = "teeth")]
thread_local! {
    static PLANTED: std::cell::Cell<Option<Bug>> = const { std::cell::Cell::new(None) };
}

/// Plants `bug` on this thread (`None` removes it).
#[cfg(feature = "teeth")]
pub fn plant(bug: Option<Bug>) {
    PLANTED.with(|p| p.set(bug));
}

/// Whether `bug` is planted on this thread.
#[inline]
pub fn planted(bug: Bug) -> bool {
    #[cfg(feature = "teeth")]
    {
        PLANTED.with(|p| p.get() == Some(bug))
    }
    #[cfg(not(feature = "teeth"))]
    {
        let _ = bug;
        false
    }
}
