//! Membership: the reconciler's brain, a pure planner that decides the next
//! configuration change.
//!
//! The leader's driver calls [`plan`] every few hundred milliseconds with what
//! it knows (the applied configuration, the member table, each peer's health
//! as the leader judged it, the time) and proposes at most one change at a
//! time, waiting until the applied configuration shows the outcome. The
//! planner has no clock, no IO and no randomness: time is a plain `now_ms`,
//! and the same input always gives the same plan, so it is tested by exact
//! outputs and by properties like the lock state machine.
//!
//! # Rules, in priority order, and where each comes from
//!
//! 1. **A joint configuration is left explicitly**, with an empty
//!    `ConfChangeV2`, before anything else. Changes that enter a joint
//!    configuration use `ConfChangeTransition::Explicit`, never `Auto`/
//!    `Implicit`: with auto-leave, a leader that steps down before applying
//!    the joint entry leaves the group joint for ever (etcd-io/etcd#12136;
//!    the same TODO sits in raft-rs 0.7's `raft.rs`). raft-rs turns a refused
//!    change into an empty entry, so the driver treats every proposal as a
//!    wish until the applied configuration shows it. One exception: a
//!    leader elected from the outgoing half (the joint configuration demotes
//!    it) hands leadership to an incoming voter first (rule 3).
//! 2. **Joined members are added as learners** first: a learner has no
//!    quorum effect, so a member that never comes up cannot stall commits (the
//!    etcd learner design; a voter that never acks freezes the group).
//! 3. **Leadership is handed over before the leader is demoted.** A removed
//!    raft-rs leader stays leader and the group stalls (tikv/raft-rs#373 and
//!    PR #584, etcd-io/etcd#11038); TiKV refuses to remove the leader
//!    outright (tikv/tikv#10384). The planner never demotes or removes the
//!    leader: it proposes [`Change::TransferLeader`] and the new leader
//!    re-plans.
//! 4. **Leaving, dead and superseded voters are replaced in one joint
//!    change** that promotes learners (`AddNode`) and demotes the voters
//!    (`AddLearnerNode`, TiKV's pattern: the old voter keeps receiving the log
//!    until the joint configuration is left, so a live one sees its own
//!    removal). Consul's autopilot (`cleanup_dead_servers`) likewise removes
//!    a dead server as soon as a replacement has joined. A voter counts as
//!    dead only after `dead_after_ms` of silence, so a restart shorter than
//!    that changes nothing (consul#8118: churn during rolling restarts loses
//!    consensus).
//! 5. **Voters grow to the target in one step** (3 → 5, never resting at 4).
//! 6. **Voters shrink to the target in one step**, but never below
//!    `min_voters` for silence (Consul's `min_quorum`; hashicorp/consul#5922
//!    and #15940 show what shrinking too far does). A voluntary leave may go
//!    lower: the leaver takes part in the change. The floor keeps dead
//!    voters only while the live voters still outvote them: with leavers
//!    going at the same time, dead voters kept for the floor would leave a
//!    configuration no live majority can ever change once the leavers stop.
//! 7. **Demoted voters and dead learners are removed** with a plain
//!    `RemoveNode`: removing a learner has no quorum effect
//!    (hashicorp/consul PR #4528).
//!
//! # Checks before any change that touches voters
//!
//! The leader has committed an entry of its term and nothing is pending (a
//! second raft-rs change does not commit before the first is applied,
//! tikv/raft-rs#373); the configuration is not joint;
//! the leader is not demoted; **the live, caught-up voters are a majority of
//! both the old and the new voter set** (TiKV's `check_conf_change` in
//! `components/raftstore/src/store/peer.rs`, etcd's `strict-reconfig-check`:
//! in a joint configuration every entry needs both majorities, so a bad half
//! stops the lock service, not just membership); every promoted learner has
//! been live and caught up for `stabilization_ms` (Consul's
//! `server_stabilization_time`, and the consul#8118 rolling-reboot loss that
//! motivates waiting); and a voter is judged dead only after the leader itself
//! has watched it for `dead_after_ms` since its election (etcd's
//! `HealthInterval`: a new leader has no health history). Three of five voters
//! dead at once gets no change at all: nothing can commit, and nothing
//! automatic may "fix" it.
//!
//! # The voter target
//!
//! [`target_voters`]: the largest odd number not above `max_voters` and the
//! eligible members. Two voters tolerate no failure and cannot shrink safely
//! (tikv/tikv#10595), so two instances run one voter and one learner.
//!
//! A promotion that lacks a stable learner waits (`SkipReason::Stabilizing`)
//! rather than resting at an even count or shrinking now and growing again
//! seconds later. A change that must wait never holds back rule 7: removing a
//! learner has no quorum effect.
//!
//! # Raft-rs details the driver must honour
//!
//! A learner added after the last compaction rejects a snapshot whose
//! configuration lacks it (tikv/raft-rs#472): refresh the stored snapshot
//! after every change that adds a member. A removed or demoted leader keeps
//! leading (tikv/raft-rs#373): the planner hands leadership to a healthy
//! voter (`SkipReason::LeaderNotVoter` when there is none). See [`Change::to_conf_change`] for the exact
//! `ConfChangeV2` of each change.

mod change;
pub mod formation;
mod health;
mod planner;

pub use change::{Change, Plan, SkipReason};
pub use planner::{plan, target_voters};

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{NodeId, NodeName};

#[cfg(test)]
mod formation_proptests;
#[cfg(test)]
mod formation_tests;
#[cfg(test)]
mod planner_proptests;
#[cfg(test)]
mod planner_tests;
#[cfg(test)]
mod testkit;

/// The planner's knobs. [`Default`] gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    /// Most voters wanted (default 5); the rest of the members are learners.
    pub max_voters: usize,
    /// Fewest voters that silence alone may leave (default 3). A voluntary
    /// leave may go lower. Taken down to an odd number (the voters are kept
    /// at an odd count); `NodeConfig::validate` refuses an even one.
    pub min_voters: usize,
    /// Silence after which a peer is dead (default 20 000 ms); the leader
    /// must also have been leader this long. Keep it at least the session TTL.
    pub dead_after_ms: u64,
    /// How long a learner must have been live and caught up, without a
    /// break, before it is promoted (default 5 000 ms).
    pub stabilization_ms: u64,
    /// A stable newcomer with the name of a voter that is not live replaces
    /// it without waiting for `dead_after_ms` (default true). Safe only when
    /// names are authenticated (one certificate per node); turn it off with a
    /// certificate shared by all instances.
    pub same_name_supersedes: bool,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            max_voters: 5,
            min_voters: 3,
            dead_after_ms: 20_000,
            stabilization_ms: 5_000,
            same_name_supersedes: true,
        }
    }
}

/// The applied Raft configuration, as raft-rs's `ConfState` has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfView {
    /// Voters (the incoming half when joint).
    pub voters: BTreeSet<NodeId>,
    /// The outgoing voters; non-empty means the configuration is joint.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Learners.
    pub learners: BTreeSet<NodeId>,
    /// Voters demoted in a joint configuration, learners once it is left.
    pub learners_next: BTreeSet<NodeId>,
}

impl ConfView {
    /// Whether the configuration is joint.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` is in any part of the configuration.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
            || self.voters_outgoing.contains(&id)
            || self.learners.contains(&id)
            || self.learners_next.contains(&id)
    }
}

/// One row of the member table.
///
/// The caller lists members that have joined and have not been removed: a
/// removed id listed here would look like a member that joined and is not yet
/// in the configuration, and would be added back as a learner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// The member's Raft id.
    pub id: NodeId,
    /// Its name (the certificate's common name, or the configured name).
    pub name: NodeName,
    /// Whether it keeps its Raft state on disk (preferred as voter).
    pub durable: bool,
    /// Whether it asked to leave (graceful shutdown).
    pub leaving: bool,
    /// Its zone, if configured (voters spread over zones when they can).
    pub zone: Option<String>,
    /// When it joined, as an ordering (the `Join` entry's index): of two
    /// members with one name, the later joined is the newer incarnation.
    pub joined_at: u64,
}

/// How the leader judges one peer. A peer missing from the health map is
/// neither live nor caught up and has no known silence, so it is never judged
/// dead: report `silent_since_ms = Some(leader_since_ms)` for a peer never
/// heard from since the election.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerHealth {
    /// It answered this leader's appends or heartbeats within the live window.
    pub live: bool,
    /// Its log is close to the leader's and it is not receiving a snapshot.
    pub caught_up: bool,
    /// Since when it has been live and caught up without a break, if it is.
    pub healthy_since_ms: Option<u64>,
    /// Since when its last response has been older than the live window, if
    /// it is silent.
    pub silent_since_ms: Option<u64>,
    /// Its matched log index at the leader (picks the transfer target).
    pub matched: u64,
}

/// Everything [`plan`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// The leader running the planner (this node).
    pub leader: NodeId,
    /// When this leader was elected.
    pub leader_since_ms: u64,
    /// Whether an entry of the leader's term has committed.
    pub committed_in_term: bool,
    /// Whether a configuration change is proposed and not yet applied
    /// (raft-rs `has_pending_conf`, or the driver's own change in flight).
    pub conf_pending: bool,
    /// The applied configuration.
    pub conf: &'a ConfView,
    /// The member table (see [`MemberView`] for what must not be listed).
    pub members: &'a [MemberView],
    /// Each peer's health; the leader itself always counts as live and
    /// caught up, whatever the map says.
    pub health: &'a BTreeMap<NodeId, PeerHealth>,
    /// The time now, in the same milliseconds as the health timestamps.
    pub now_ms: u64,
    /// The knobs.
    pub cfg: &'a PlanConfig,
}
