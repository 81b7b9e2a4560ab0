//! `NodeStatus`: a node's local, pull-style view of itself and the cluster.

use std::net::SocketAddr;

use crate::types::{NodeId, NodeName, SessionId};

/// A node's Raft role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Not yet part of the Raft group (start-up).
    Starting,
    /// Follows a leader, or waits for one.
    Follower,
    /// Running a pre-vote round.
    PreCandidate,
    /// Running an election.
    Candidate,
    /// Leads the group.
    Leader,
    /// Stopped (shut down, or failed).
    Stopped,
}

/// One member of the cluster as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its Raft id.
    pub id: NodeId,
    /// Its certificate name.
    pub name: NodeName,
    /// Its address.
    pub addr: SocketAddr,
    /// Whether it votes (else it is a learner).
    pub voter: bool,
}

/// This node's local view. Cheap to take; not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// This node's Raft id.
    pub id: NodeId,
    /// This node's certificate name.
    pub name: NodeName,
    /// This node's role.
    pub role: Role,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The current Raft term.
    pub term: u64,
    /// The highest log index known committed.
    pub commit_index: u64,
    /// The highest log index applied to the lock table.
    pub applied_index: u64,
    /// This node's open session, if any.
    pub session: Option<SessionId>,
    /// Whether this node's session holds a lease right now.
    pub lease_valid: bool,
    /// The members, voters first.
    pub members: Vec<MemberStatus>,
}

impl NodeStatus {
    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}
