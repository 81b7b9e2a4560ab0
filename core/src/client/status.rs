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
    /// Stopped because the cluster removed this node's id (issue 9): its
    /// calls fail with [`Error::Removed`](crate::Error::Removed).
    Removed,
}

/// A member's part in Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberRole {
    /// It votes in elections and counts toward commits.
    Voter,
    /// It receives and applies the log, and holds sessions and locks like
    /// a voter, but does not vote; the leader promotes it when a voter is
    /// missing (issue 9).
    Learner,
}

/// One member of the cluster as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberStatus {
    /// Its Raft id.
    pub id: NodeId,
    /// Its certificate name.
    pub name: NodeName,
    /// Its address.
    pub addr: SocketAddr,
    /// Whether it votes (else it is a learner); `role` says the same.
    pub voter: bool,
    /// Voter or learner, in the configuration this node applied last.
    pub role: MemberRole,
    /// On the leader, whether it heard from the member within two
    /// election timeouts (refreshed every 500 ms); `None` on other nodes,
    /// which do not judge liveness (`members()` asks the leader).
    pub live: Option<bool>,
    /// Whether it keeps its Raft state on disk.
    pub durable: bool,
    /// Its failure zone, if it named one.
    pub zone: Option<String>,
    /// Whether it asked to leave.
    pub leaving: bool,
}

/// One member, as [`members()`](crate::NodeHandle::members) reports it:
/// linearizable (confirmed by a quorum round, then read from the applied
/// member table and configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Its Raft id.
    pub id: NodeId,
    /// Its name: its certificate's common name, or the name it was given
    /// with a certificate shared by several nodes (`NodeBuilder::name`).
    pub name: NodeName,
    /// The address it is reached at.
    pub addr: SocketAddr,
    /// Voter or learner. While a joint configuration change is in flight
    /// (the leader leaves it one commit after entering it) the voters are
    /// those of the configuration being left, which still decides: a
    /// learner being promoted is listed as a learner until the change is
    /// complete, so a listed voter set is one whose majority the cluster
    /// needs (issue 9).
    pub role: MemberRole,
    /// Whether the leader heard from it within two election timeouts
    /// (the leader's judgment, which its membership decisions use).
    pub live: bool,
    /// Whether it keeps its Raft state on disk.
    pub durable: bool,
    /// Its failure zone, if it named one (`NodeBuilder::zone`).
    pub zone: Option<String>,
    /// Whether it asked to leave (a graceful shutdown, issue 9): the
    /// leader replaces or demotes it, then removes it.
    pub leaving: bool,
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

    /// The leader's member record (name, address, role), if this node
    /// knows the leader and has applied its membership.
    pub fn leader_member(&self) -> Option<&MemberStatus> {
        let leader = self.leader?;
        self.members.iter().find(|m| m.id == leader)
    }

    /// The leader's name (issue 12: `status()` named it only by its Raft
    /// id), if known.
    pub fn leader_name(&self) -> Option<&NodeName> {
        self.leader_member().map(|m| &m.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str) -> MemberStatus {
        MemberStatus {
            id: NodeId(id),
            name: NodeName(name.into()),
            addr: ([127, 0, 0, 1], 7000).into(),
            voter: true,
            role: MemberRole::Voter,
            live: None,
            durable: false,
            zone: None,
            leaving: false,
        }
    }

    #[test]
    fn the_leader_is_named_from_the_members() {
        let mut s = NodeStatus {
            id: NodeId(1),
            name: NodeName("a".into()),
            role: Role::Follower,
            leader: Some(NodeId(2)),
            term: 3,
            commit_index: 0,
            applied_index: 0,
            session: None,
            lease_valid: false,
            members: vec![member(1, "a"), member(2, "b")],
        };
        assert_eq!(s.leader_name().map(|n| n.as_str()), Some("b"));
        s.leader = Some(NodeId(9));
        assert_eq!(s.leader_name(), None, "a leader not (yet) in the members");
        s.leader = None;
        assert_eq!(s.leader_member(), None);
    }
}
