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
    /// Joint configurations are entered with an automatic transition and
    /// never left explicitly: raft-rs's auto-leave is relied on, which a
    /// leader change before the joint entry applies leaves undone
    /// (etcd-io/etcd#12136); a leader stranded outside the voters is not
    /// handed over either (the planner's safety net for that case is part
    /// of what is left out, since it would mask the first symptom).
    RelyOnAutoLeave,
    /// The planner changes voters without checking that the live, caught-up
    /// voters are a majority of the old and the new configuration, and
    /// promotes learners that are not stable (still snapshotting).
    SkipLiveMajorityCheck,
    /// A leader elected from the outgoing half of a joint configuration
    /// leaves it without handing leadership over first: a removed raft-rs
    /// leader keeps leading (tikv/raft-rs#373, etcd-io/etcd#11038), and a
    /// leader outside the voters is not handed over afterwards.
    RemoveLeaderWithoutTransfer,
    /// The planner's clock starts at the node's start, not the election: a
    /// new leader judges peers silent from before it led (no settle time,
    /// etcd's `HealthInterval`).
    RemoveRightAfterElection,
    /// A joining learner is sent the stored snapshot even when that
    /// snapshot's configuration lacks it (tikv/raft-rs#472).
    SnapshotWithoutNewLearner,
    /// A node answered `Removed` stops without marking its data directory:
    /// its next start comes back from the old disk under the removed id
    /// (etcd refuses such a member for good, `errMemberRemoved`), instead of
    /// starting blank under a new one.
    RemovedKeepsItsState,
    /// Peers drop a removed member's messages without telling it: it never
    /// stops, and campaigns into the void as a non-member for ever.
    SilentToRemoved,
    /// A semaphore admits one permit more than its count (an off-by-one
    /// in the capacity check: `<=` against `count + 1`).
    PermitOverCount,
    /// A write (exclusive) claim is admitted when there is no exclusive
    /// holder, forgetting the readers.
    WriterBesideReader,
    /// A multi-lock is granted once its examined name is free and takes
    /// the names that are free, leaving the others with their holders,
    /// while the requester is told it holds them all (Curator's and
    /// Redisson's one-by-one `MultiLock`, reported as a whole).
    PartialMultiLock,
    /// A leader is never told it lost its term: `Leadership::is_leader()`
    /// answers from the term's own record (not resigned) without looking at
    /// the lease, and `lost()` never completes (client-go's leader that
    /// keeps working after its lease ran out).
    SkipLeaderLossNotice,
}

impl Bug {
    /// Every bug the simulator's hunt catches (see [`Bug::PRIMITIVES`]).
    pub const ALL: [Bug; 19] = [
        Bug::GrantWithoutSessionCheck,
        Bug::AckBeforeFsync,
        Bug::AckKeepaliveWithoutQuorum,
        Bug::TokenReuseAfterRestart,
        Bug::GrantOutOfFifoOrder,
        Bug::ZeroLeaseMargin,
        Bug::LeaseClockStopsInSuspend,
        Bug::ReuseIdOnBlankRestart,
        Bug::RelyOnAutoLeave,
        Bug::SkipLiveMajorityCheck,
        Bug::RemoveLeaderWithoutTransfer,
        Bug::RemoveRightAfterElection,
        Bug::SnapshotWithoutNewLearner,
        Bug::RemovedKeepsItsState,
        Bug::SilentToRemoved,
        Bug::PermitOverCount,
        Bug::WriterBesideReader,
        Bug::PartialMultiLock,
        Bug::SkipLeaderLossNotice,
    ];

    /// The bugs of issue 11's primitives in the state machine, caught by
    /// its proptest (`machine::proptests`) and, being in [`Bug::ALL`] too,
    /// by the simulator's hunt, whose workload uses every primitive.
    pub const PRIMITIVES: [Bug; 3] = [
        Bug::PermitOverCount,
        Bug::WriterBesideReader,
        Bug::PartialMultiLock,
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
