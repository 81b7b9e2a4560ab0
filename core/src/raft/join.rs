//! Members that join a running cluster (issue 9), as the members see it.
//!
//! # Raft ids and transport keys
//!
//! The transport names a peer by the key of its name ([`NodeId::from_name`]
//! of its certificate's common name, or of the member name it claims when
//! it shares its certificate with the other nodes). A founder's
//! Raft id is that same key, so for a cluster that never changed nothing
//! is translated. A node that joins later gets a Raft id the cluster
//! allocates (a committed `Join`, above every id before it, never reused),
//! so a node that lost its state and comes back under the same name gets a
//! new id and can never vote under one that voted before. Messages are
//! routed by the member table: Raft id → member name → key; a Raft message
//! counts only when the connection it came on is the one of the name its
//! claimed sender has in the table.
//!
//! # Joining
//!
//! A joiner asks any member ([`PeerMessage::JoinAsk`]), which proposes a
//! `Join` (a follower's proposal goes to the leader). Every member learns
//! the joiner's address when the `Join` applies; the member that was asked
//! answers with the allocated id and the members ([`PeerMessage::Joined`]).
//! The planner then adds the joiner as a learner.
//!
//! # A joiner starts from a snapshot
//!
//! A joiner's log is empty and its configuration unknown: the founders'
//! configuration is their initial state, in no log entry, so entries from
//! index 1 would give it a wrong configuration. When a joiner answers the
//! leader's first append with an empty log, the leader makes sure its
//! stored snapshot includes the joiner (compacting at its applied index if
//! not: raft-rs refuses a snapshot whose configuration lacks the receiver,
//! tikv/raft-rs#472) and sends that snapshot instead of entries.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use raft::eraftpb::{Message, MessageType};

use super::Driver;
use crate::machine::Command;
use crate::storage::LogStore;
use crate::transport::{JoinedMember, PeerMessage};
use crate::types::{NodeId, NodeName};

/// Joiners waiting for their `Join` to apply here, by token.
pub(crate) const MAX_JOIN_WAITERS: usize = 1024;

/// How long this node waits for its own `SetZone` to apply before it
/// proposes it again (a proposal dropped by a leader change).
const ZONE_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Joiners this node was asked by, waiting for their `Join` to apply; and
/// when this node last proposed its own zone.
#[derive(Debug, Default)]
pub(crate) struct JoinWaiters(BTreeMap<u64, NodeId>, Option<tokio::time::Instant>);

impl<S: LogStore + Send + 'static> Driver<S> {
    /// The transport key of Raft id `id`: the key of its member name.
    pub(super) fn key_of(&self, id: NodeId) -> Option<NodeId> {
        if id == self.me {
            return Some(self.key);
        }
        let members = self.table.members();
        if members.is_empty() {
            // A joiner before its snapshot: the members it was told.
            return self.directory.get(&id).copied();
        }
        members.get(id).map(|m| NodeId::from_name(m.name.as_str()))
    }

    /// Whether some member's name has transport key `key`.
    pub(super) fn is_member_key(&self, key: NodeId) -> bool {
        self.table
            .members()
            .iter()
            .any(|m| NodeId::from_name(m.name.as_str()) == key)
    }

    /// Tells the transport every member's name and address.
    pub(super) fn teach_transport(&self) {
        for m in self.table.members().iter() {
            if m.id != self.me {
                self.learn(&m.name, m.addr);
            }
        }
    }

    fn learn(&self, name: &NodeName, addr: SocketAddr) {
        let key = NodeId::from_name(name.as_str());
        if key != self.key {
            self.transport.learn_peer(key, name.as_str(), addr);
        }
    }

    /// A node asks to join: propose its `Join`, and answer when it applies.
    pub(super) fn on_join_ask(
        &mut self,
        from: NodeId,
        token: u64,
        name: String,
        addr: SocketAddr,
        durable: bool,
        zone: Option<String>,
    ) {
        if NodeId::from_name(&name) != from {
            let reason = format!("the name {name:?} is not the one its connection presents");
            self.transport
                .send(from, vec![PeerMessage::JoinRefused { token, reason }]);
            return;
        }
        let members = self.table.members();
        if let Some(r) = members.by_token(token) {
            let id = r.id;
            self.answer_joined(from, token, id);
            return;
        }
        // Not founded yet, or no leader to take the proposal: the joiner
        // asks again.
        if members.cluster_id() == 0 || self.leader_id().is_none() || self.shutdown.is_some() {
            return;
        }
        if self.join_waiters.0.len() >= MAX_JOIN_WAITERS
            && !self.join_waiters.0.contains_key(&token)
        {
            return;
        }
        self.join_waiters.0.insert(token, from);
        let cmd = Command::Join {
            token,
            name: NodeName(name),
            addr,
            zone,
            durable,
        };
        let _ = self.raw.propose(Vec::new(), cmd.encode());
    }

    /// Records this node's address and configured zone in the member table
    /// when the table holds others (it restarted on a new address; a
    /// founder's record has no zone; a restart may name another zone): the
    /// leader reads zones from the table when it picks voters, and peers
    /// and `members()` read addresses. Joiners send theirs in the `Join`
    /// and usually need nothing.
    pub(super) fn sync_zone(&mut self, now: tokio::time::Instant) {
        if self.shutdown.is_some() || self.leader_id().is_none() {
            return;
        }
        let Some(own) = self.table.members().get(self.me) else {
            return;
        };
        let moved = own.addr != self.addr && !self.addr.ip().is_unspecified();
        if (own.zone == self.cfg.zone && !moved)
            || self
                .join_waiters
                .1
                .is_some_and(|at| now.saturating_duration_since(at) < ZONE_RETRY)
        {
            return;
        }
        // A member that came back on a new address records it (issue 9,
        // design item 2): peers and `members()` read addresses there.
        let cmd = if moved {
            tracing::info!(node = %self.name, from = %own.addr, to = %self.addr, "recording this node's new address");
            Command::SetAddr {
                id: self.me,
                addr: self.addr,
            }
        } else {
            Command::SetZone {
                id: self.me,
                zone: self.cfg.zone.clone(),
            }
        };
        // A follower's proposal goes to the leader; a lost one is retried.
        if self.raw.propose(Vec::new(), cmd.encode()).is_ok() {
            self.join_waiters.1 = Some(now);
        }
    }

    /// A `Join` applied: learn the joiner's address, and answer it if it
    /// asked this node.
    pub(super) fn on_member_joined(&mut self, token: u64, id: NodeId) {
        if let Some(m) = self.table.members().get(id) {
            let (name, addr) = (m.name.clone(), m.addr);
            self.learn(&name, addr);
        }
        if let Some(from) = self.join_waiters.0.remove(&token) {
            self.answer_joined(from, token, id);
        }
    }

    /// A `Join` was refused: tell the joiner if it asked this node.
    pub(super) fn on_member_join_refused(&mut self, token: u64, reason: String) {
        if let Some(from) = self.join_waiters.0.remove(&token) {
            self.transport
                .send(from, vec![PeerMessage::JoinRefused { token, reason }]);
        }
    }

    fn answer_joined(&self, to: NodeId, token: u64, id: NodeId) {
        let members = self
            .table
            .members()
            .iter()
            .map(|m| JoinedMember {
                id: m.id.0,
                name: m.name.0.clone(),
                addr: m.addr,
            })
            .collect();
        self.transport.send(
            to,
            vec![PeerMessage::Joined {
                token,
                id: id.0,
                members,
            }],
        );
    }

    /// Leader side: a joiner answered an append with an empty log. Send it
    /// a snapshot that includes it, never entries from index 1 (see the
    /// module docs). Returns false when the message must not be stepped
    /// yet (no such snapshot can be taken right now; the joiner answers the
    /// next probe the same way).
    pub(super) fn snapshot_for_joiner(&mut self, msg: &Message) -> bool {
        // The type first: this runs for every Raft message the node steps.
        let empty_log_reject = msg.get_msg_type() == MessageType::MsgAppendResponse
            && msg.reject
            && msg.reject_hint == 0;
        if !empty_log_reject || !self.is_leader() {
            return true;
        }
        let joined = self
            .table
            .members()
            .get(NodeId(msg.from))
            .is_some_and(|m| m.joined_at > 0);
        if !joined {
            return true;
        }
        let stored = raft::Storage::snapshot(self.raw.store(), 0, msg.from).ok();
        let covers = stored.as_ref().is_some_and(|s| {
            let cs = s.get_metadata().get_conf_state();
            cs.learners.contains(&msg.from)
                || cs.voters.contains(&msg.from)
                || (crate::teeth::planted(crate::teeth::Bug::SnapshotWithoutNewLearner)
                    && !s.is_empty())
        });
        let index = if covers {
            stored.map_or(0, |s| s.get_metadata().index)
        } else {
            match self.compact_for_joiner() {
                Some(index) => index,
                None => return false,
            }
        };
        if let Some(pr) = self.raw.raft.mut_prs().get_mut(msg.from) {
            pr.pending_request_snapshot = index;
        }
        true
    }

    /// Compacts the log behind a snapshot of the table at its applied
    /// index, with the current configuration. Every configuration change
    /// moves the table's index, so none came after it: the snapshot's data
    /// and configuration agree. Only once Raft's own applied index (which
    /// never passes what this node persisted) has reached it.
    fn compact_for_joiner(&mut self) -> Option<u64> {
        let applied = self.table.applied_index();
        if applied == 0 || applied > self.raw.raft.raft_log.applied {
            return None;
        }
        let snap = self.snapshot_at(applied)?;
        self.compaction.next = None;
        self.compaction.snapshot_taken(snap.data.len() as u64);
        match self.raw.mut_store().compact(snap) {
            Ok(()) => {
                tracing::info!(node = %self.name, index = applied, "log compacted for a joining member's snapshot");
                Some(applied)
            }
            Err(e) => {
                tracing::warn!(node = %self.name, error = %e, "compaction for a joiner failed");
                None
            }
        }
    }
}
