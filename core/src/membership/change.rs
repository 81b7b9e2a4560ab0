//! What the planner decides, and the `ConfChangeV2` each change becomes.

use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};

use crate::types::NodeId;

/// One step towards the wanted configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Leave the joint configuration (an empty `ConfChangeV2`).
    LeaveJoint,
    /// Hand leadership to `to` before this leader is demoted; not a
    /// configuration change (the driver calls `RawNode::transfer_leader`).
    TransferLeader {
        /// The voter to take over.
        to: NodeId,
    },
    /// Add members that joined as learners.
    AddLearners(Vec<NodeId>),
    /// Enter a joint configuration that promotes learners and demotes
    /// voters to learners, in one step.
    Joint {
        /// Learners that become voters.
        promote: Vec<NodeId>,
        /// Voters that become learners.
        demote: Vec<NodeId>,
    },
    /// Remove learners from the configuration.
    Remove(Vec<NodeId>),
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Propose this change.
    Change(Change),
    /// The configuration is what it should be.
    Idle,
    /// Something should change but may not yet; retry on a later tick.
    Skip(SkipReason),
}

/// Why a wanted change was not proposed (a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// No entry of the leader's term has committed yet.
    NotCommittedInTerm,
    /// A configuration change is in flight.
    Pending,
    /// This leader is not a voter of the applied configuration (raft-rs
    /// keeps a removed leader leading, tikv/raft-rs#373): it must not plan.
    LeaderNotVoter,
    /// The live, caught-up voters are not a majority of the old or the new
    /// voter set.
    NoLiveMajority,
    /// A voter has been silent long enough, but this leader has not yet
    /// watched it for `dead_after_ms` since its election.
    Settling,
    /// Promotion waits for learners to be stable for `stabilization_ms`.
    Stabilizing,
    /// Dead voters stay because removing them would go below `min_voters`.
    MinVoters,
    /// The leader is leaving and no voter or stable learner can take over.
    NoTransferTarget,
}

impl SkipReason {
    /// A stable, lowercase label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotCommittedInTerm => "not_committed_in_term",
            Self::Pending => "pending",
            Self::LeaderNotVoter => "leader_not_voter",
            Self::NoLiveMajority => "no_live_majority",
            Self::Settling => "settling",
            Self::Stabilizing => "stabilizing",
            Self::MinVoters => "min_voters",
            Self::NoTransferTarget => "no_transfer_target",
        }
    }
}

impl Change {
    /// A stable, lowercase label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LeaveJoint => "leave_joint",
            Self::TransferLeader { .. } => "transfer_leader",
            Self::AddLearners(_) => "add_learners",
            Self::Joint { .. } => "joint",
            Self::Remove(_) => "remove",
        }
    }

    /// The `ConfChangeV2` to propose, or `None` for a transfer (not a
    /// configuration change) and for a change with no ids.
    ///
    /// - `LeaveJoint`: the empty `ConfChangeV2` (transition `Auto`, no
    ///   changes), which raft-rs reads as "leave the joint configuration".
    /// - `Joint`: transition `Explicit`, `AddNode` for each promoted learner
    ///   and `AddLearnerNode` for each demoted voter. Never `Auto`: with
    ///   several changes `Auto` silently sets auto-leave (raft-rs
    ///   `ConfChangeV2::enter_joint`), which can strand the group joint
    ///   (etcd-io/etcd#12136). The planner leaves it with `LeaveJoint`.
    /// - `AddLearners` / `Remove` of one id: a simple change (transition
    ///   `Auto` with a single change is not joint at all, so there is no
    ///   auto-leave to rely on). Of several ids: transition `Explicit`, which
    ///   raft-rs applies as a joint configuration whose halves have the same
    ///   voters (no quorum effect); the planner leaves it next.
    pub fn to_conf_change(&self) -> Option<ConfChangeV2> {
        let (singles, joint) = match self {
            Self::LeaveJoint => return Some(ConfChangeV2::default()),
            Self::TransferLeader { .. } => return None,
            Self::AddLearners(ids) => (singles(ids, ConfChangeType::AddLearnerNode), ids.len() > 1),
            Self::Remove(ids) => (singles(ids, ConfChangeType::RemoveNode), ids.len() > 1),
            Self::Joint { promote, demote } => {
                let mut v = singles(promote, ConfChangeType::AddNode);
                v.extend(singles(demote, ConfChangeType::AddLearnerNode));
                (v, true)
            }
        };
        if singles.is_empty() {
            return None;
        }
        let mut cc = ConfChangeV2::default();
        if joint && !crate::teeth::planted(crate::teeth::Bug::RelyOnAutoLeave) {
            cc.set_transition(ConfChangeTransition::Explicit);
        }
        cc.set_changes(singles.into());
        Some(cc)
    }
}

fn singles(ids: &[NodeId], kind: ConfChangeType) -> Vec<ConfChangeSingle> {
    ids.iter()
        .map(|id| {
            let mut s = ConfChangeSingle::default();
            s.set_change_type(kind);
            s.node_id = id.0;
            s
        })
        .collect()
}
