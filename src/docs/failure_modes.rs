//! Failure modes: what peerlock promises when things break.
//!
//! # The promises
//!
//! These hold in every failure below; the sections say what else happens.
//!
//! 1. **One holder per grant.** A lock is granted by a committed Raft log
//!    entry, applied by the same pure state machine on every node: at most
//!    one session holds a lock at any point of the log (for read-write
//!    locks, no reader beside a writer; for semaphores, never more permits
//!    than the count).
//! 2. **Tokens rise.** Each grant's [`FencingToken`](crate::FencingToken)
//!    is above every earlier grant's on its names, across leader changes,
//!    restarts and a re-founding after every disk was lost. A resource
//!    that refuses lower tokens is never written by a holder that lost
//!    its lock (see [`fencing`](super::fencing)). **This is the
//!    protection that survives every failure here.**
//! 3. **The holder knows first.** [`LockGuard::is_held`](crate::LockGuard::is_held)
//!    turns false, and [`LockGuard::lost`](crate::LockGuard::lost)
//!    completes, before a majority can expire the holder's session and
//!    grant its locks to another, as long as clock *rates* differ by less
//!    than 10 % (the lease margin, a tenth of the TTL). No wall clock and
//!    no clock synchronisation are used.
//! 4. **Bounded calls.** Every call returns within about one TTL when the
//!    cluster cannot answer (`NoQuorum`); [`Node::ready`](crate::Node::ready)
//!    within two, [`Node::shutdown`](crate::Node::shutdown) within about
//!    11 s.
//! 5. **FIFO.** Waiters are granted in the order their requests were
//!    committed; a cancelled or timed-out wait leaves the queue.
//!
//! Each promise is checked by one history checker, in a deterministic
//! simulator (500 seeds of a minute of faults in every CI run) and in tests of real processes and network namespaces. The
//! README's "Tested faults" lists every fault, how it is injected, and the
//! bugs the checker found.
//!
//! # A crash (kill -9, power loss of one machine)
//!
//! - The crashed node's locks go to the next waiters once its session
//!   expires: between TTL + lock-delay after its last renewal and TTL +
//!   lock-delay + 1 s after the crash. Nothing the cluster acknowledged is
//!   lost while a majority survives.
//! - If the crashed node led Raft, the others elect a leader first (about
//!   half a second with the default timing); holders on other nodes keep
//!   their locks across it.
//! - A durable node ([`NodeBuilder::data_dir`](crate::NodeBuilder::data_dir))
//!   restarts as itself from its disk; an in-memory one joins as a new
//!   member. Either way its old session is gone: its guards were in the
//!   crashed process.
//! - Every node crashing at once: durable clusters come back with the same
//!   lock table and sessions (which then expire normally), in-memory ones
//!   start empty. Tokens keep rising in both.
//!
//! # A pause (GC, swapping, `SIGSTOP`, a VM frozen, a blocked runtime)
//!
//! A paused holder cannot renew. If the pause outlasts the lease (about
//! `0.65 × TTL` after the last renewal in the worst case), its session
//! expires and its locks move. When it resumes:
//!
//! - its guards report `is_held() == false`, `lost()` completes, and a
//!   `with_lock` returns [`Error::LockLost`](crate::Error::LockLost), even
//!   for a closure that finished during the pause (its result is taken
//!   only if the lease held at that instant);
//! - anything it writes with the old token is refused by a fenced resource
//!   (`tests/process/t10_sigstop.rs`, and the `service` example's test on
//!   SQLite and PostgreSQL). An unfenced resource is not protected: the
//!   paused code resumes between its check and its write.
//!
//! A suspended host (a laptop lid, a suspended VM) is a pause too. On
//! Linux and Android leases count the time the host slept, so a woken
//! holder knows its lease ended (within 200 ms). On other systems the
//! clock stops during a suspend: rely on the token there.
//!
//! # A network partition
//!
//! - **The majority side** goes on: it elects a leader if needed, expires
//!   the sessions of the nodes it cannot hear after their TTL, and grants
//!   their locks.
//! - **The minority side** cannot commit anything. Its holders' leases run
//!   out (they learn so before the majority can expire them: promise 3),
//!   its waiters wait, and its calls fail with `NoQuorum` after about one
//!   TTL. When the partition heals, its nodes catch up from the leader.
//! - One-way links, lossy links, a node cut off while it led, a bridge
//!   between two halves: all in the simulator and in network-namespace
//!   tests (`t40_netns`, `t42_netns_election`); none breaks a promise.
//!   Message delay, duplication and reordering are tested in simulation
//!   only.
//! - A voter that stays unreachable for `MembershipConfig::dead_after`
//!   (20 s by default) is replaced by a learner; three of five voters lost
//!   at once change nothing (no majority can agree on a change) until one
//!   returns.
//!
//! # Losing a disk
//!
//! - **A torn last record** (a crash mid-write) is dropped at restart; it
//!   was never acknowledged.
//! - **A damaged record before the end**: the node refuses to start and
//!   names the file and byte offset. Empty the directory: the node joins as
//!   a new member and the cluster replaces the old one.
//! - **A failing disk** (a write or fsync error): the node stops for good
//!   and every later call returns an error; it never runs on after a
//!   failed fsync.
//! - **A lost or emptied directory**: the node joins as a new member under
//!   a new id, never under its old one (where it could vote twice in one
//!   term and let two leaders be elected).
//! - **A restored backup, or a copy of another node's directory**: refused
//!   at start (it would roll back what the node acknowledged). Restoring a
//!   consensus member from a backup is never safe; empty it instead. The
//!   README's "Storage" section lists the copies that still get in (a copy
//!   of a member that joined through seeds).
//! - **Every disk lost**: the cluster is founded again and starts empty;
//!   its tokens still start above the old cluster's (they begin at the
//!   founder's wall clock in microseconds), as long as the new founder's
//!   clock is not behind the old one's by more than the old cluster's age.
//!
//! # Clock skew
//!
//! peerlock reads no wall clock for leases, only each node's monotonic
//! clock, so clocks set to different times do not matter. What matters is
//! the **rate**: the lease margin covers clocks whose rates differ by up to
//! 10 % over one TTL. The simulator runs every seed with clock rates
//! within ±5 % or beyond the bound (±30 %):
//!
//! - within the bound, every promise holds;
//! - beyond it, a holder may still believe its lease holds after another
//!   node was granted the lock (promise 3 breaks), while promises 1, 2, 4
//!   and 5 hold: the token still stops the stale writes.
//!
//! The one use of the wall clock is the token base, read once when a
//! cluster is founded (above).
//!
//! # A graceful stop
//!
//! [`Node::shutdown`](crate::Node::shutdown) first revokes this node's
//! guards (their `lost()` completes), then releases its locks by closing
//! its session, hands Raft leadership over and, by default, leaves the
//! membership. Other nodes get the locks at once, not a TTL later. Without
//! a quorum it still returns within about 11 s, with `Err(NoQuorum)`: the
//! locks are then freed when the session expires.
//!
//! # What peerlock does not promise
//!
//! - Safety for a resource that does not check tokens. The lease narrows
//!   the window; only the fence closes it.
//! - Progress without a majority of voters.
//! - That `is_held()` is exact beyond the clock-rate bound.
//! - That work your critical section spawned stops when the lock is lost
//!   (see [`fencing`](super::fencing), "Work that outlives its lock").
//! - Ownership by thread or task: locks are owned by guards; the same task
//!   asking again gets [`Error::AlreadyHeld`](crate::Error::AlreadyHeld),
//!   and two tasks that wait for each other can deadlock, as with any lock.
