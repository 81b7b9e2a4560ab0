//! Removed members (issue 9, item 1): an id the cluster removed from its
//! configuration never takes part again, and is told so.
//!
//! A member is removed when its id is below the table's `next_id` and has
//! no record (ids are never reused, so no tombstone list is needed). Raft
//! messages from a removed id are already dropped (they claim a sender no
//! member has); on top of that every peer answers them with
//! [`PeerMessage::Removed`], at most once a second per peer, so the removed
//! node learns it instead of campaigning into the void. etcd answers a
//! removed member the same way ("the member has been permanently removed
//! from the cluster", etcd-io/etcd `rafthttp` `errMemberRemoved`), and
//! that member stops.
//!
//! The removed node trusts the frame only from a connection proven to be
//! a member of its own table, for its own id and its own cluster: every
//! table is a prefix of the same log, so a member that applied the removal
//! saw it committed. It then stops as a shutdown would, except that its
//! calls fail with [`Error::Removed`], and a durable node marks its
//! directory so the next start is blank and joins under a new id (its old
//! state can never count again).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::Driver;
use crate::error::Error;
use crate::storage::LogStore;
use crate::transport::PeerMessage;
use crate::types::NodeId;

/// How often one peer is told it was removed.
const TELL_EVERY: Duration = Duration::from_secs(1);
/// The most peers remembered as told (a bound on the map; it is cleared
/// when full, which at worst tells some twice).
const TOLD_MAX: usize = 1024;

/// When each removed peer (by transport key) was last told; and, on this
/// node, what [`Driver::probe_if_orphaned`] keeps.
#[derive(Debug, Default)]
pub(super) struct Told {
    by_peer: HashMap<NodeId, Instant>,
    /// Since when this node has been a non-voter with no leader it hears.
    orphan_since: Option<Instant>,
    /// When the next probe round is due.
    next_probe: Option<Instant>,
    /// When a Raft message last came from the leader this node follows.
    leader_heard: Option<Instant>,
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Whether a Raft message from `id` (over the connection `key`) comes
    /// from a removed member; if so it is answered with `Removed`, and the
    /// caller drops it.
    pub(super) fn sent_by_removed(&mut self, key: NodeId, id: NodeId, now: Instant) -> bool {
        let members = self.table.members();
        if id == self.me || !members.is_removed(id) {
            return false;
        }
        let cluster_id = self.table.members().cluster_id();
        let due = self
            .told
            .by_peer
            .get(&key)
            .is_none_or(|at| now.saturating_duration_since(*at) >= TELL_EVERY);
        if due && !crate::teeth::planted(crate::teeth::Bug::SilentToRemoved) {
            if self.told.by_peer.len() >= TOLD_MAX {
                self.told.by_peer.clear();
            }
            self.told.by_peer.insert(key, now);
            tracing::warn!(node = %self.name, peer = %key, %id, "a removed member still sends; telling it");
            self.transport
                .send(key, vec![PeerMessage::Removed { cluster_id, id }]);
        }
        true
    }

    /// A Raft message from `from` was stepped: if it came from the leader
    /// this node follows, the leader still talks to it.
    pub(super) fn heard_from(&mut self, from: u64, now: Instant) {
        if from != 0 && from == self.raw.raft.leader_id {
            self.told.leader_heard = Some(now);
        }
    }

    /// A non-voter whose leader does not talk to it asks its peers whether
    /// it is still a member. A removed voter learns it from the answer to
    /// its first pre-vote; a learner never campaigns, and the leader no
    /// longer sends to an id it removed, so a learner removed while it was
    /// down (and back from its disk), or cut off, would otherwise wait in
    /// silence for ever. After two election timeouts with no leader, or
    /// with a leader it has not heard from for that long, and then every
    /// two, it sends a probe: a Raft message of a type raft-rs only ever
    /// reports locally (`MsgUnreachable`), which a peer drops unread,
    /// unless the sender's id is removed, which [`Self::sent_by_removed`]
    /// answers with `Removed` first. (Found by the simulator: a learner
    /// removed while crashed stayed a silent non-member after its restart;
    /// so did a joiner removed before its first snapshot, back from its
    /// disk with no table.)
    ///
    /// "A leader it has not heard from" (issue 10, curve 5): raft-rs keeps
    /// a learner's leader id until it hears of a newer term, and a learner
    /// never campaigns, so a learner removed while it was cut off, or too
    /// busy to answer, still named the leader that removed it and never
    /// probed. Forming 1 000 nodes in one process left five joiners that
    /// way for good: removed before their first snapshot, with no session
    /// whose keepalive would have drawn a `Removed`.
    ///
    /// Whom it asks: only that leader while it names one, over the
    /// connection the leader's heartbeats used, and which removed it if
    /// anyone did; every member it knows (hundreds, each maybe a new
    /// handshake) once it has named no leader, or not heard from it, for
    /// `dead_after` (the leader that removed it may have died since). A
    /// first version asked every member every 8th round as soon as the
    /// leader was 2 election timeouts late: on 2 cores shared by 1 000
    /// nodes, learners that missed heartbeats dialed every member, a
    /// handshake storm that stopped the formation at 645 to 773 nodes.
    pub(super) fn probe_if_orphaned(&mut self, now: Instant) {
        let every = self.cfg.election_timeout() * 2;
        let voter = self.raw.raft.prs().conf().voters().contains(self.me.0);
        let leader = self.leader_id();
        let silent = self
            .told
            .leader_heard
            .map(|t| now.saturating_duration_since(t));
        let leader_heard = leader.is_some() && silent.is_some_and(|d| d < every);
        if voter || leader_heard || self.stopped {
            self.told.orphan_since = None;
            self.told.next_probe = None;
            return;
        }
        let since = *self.told.orphan_since.get_or_insert(now);
        let due = self.told.next_probe.is_none_or(|at| now >= at);
        if now.saturating_duration_since(since) < every || !due {
            return;
        }
        self.told.next_probe = Some(now + every);
        let long_silent = silent.is_none_or(|d| d >= self.cfg.membership.dead_after.max(every));
        let peers: Vec<NodeId> = match leader {
            Some(leader) if !long_silent => vec![leader],
            // Before its first snapshot a joiner has no table: it asks the
            // members it was told when it joined.
            _ if self.table.members().is_empty() => self.directory.keys().copied().collect(),
            _ => self.table.members().iter().map(|m| m.id).collect(),
        };
        for id in peers.into_iter().filter(|id| *id != self.me) {
            let Some(key) = self.key_of(id) else { continue };
            let mut probe = raft::eraftpb::Message::default();
            probe.set_msg_type(raft::eraftpb::MessageType::MsgUnreachable);
            probe.from = self.me.0;
            probe.to = id.0;
            if let Ok(bytes) = protobuf::Message::write_to_bytes(&probe) {
                self.transport.send(key, vec![PeerMessage::Raft(bytes)]);
            }
        }
    }

    /// A peer says this node's id was removed.
    pub(super) fn on_removed(&mut self, from: NodeId, cluster_id: u128, id: NodeId) {
        let ours = self.table.members().cluster_id();
        // A joiner before its first snapshot has no table: it trusts the
        // members it was told when it joined (they answered its join).
        let known = if self.table.members().is_empty() {
            self.directory.values().any(|k| *k == from)
        } else {
            self.is_member_key(from)
        };
        let believable = id == self.me
            && known
            && (ours == 0 || cluster_id == ours)
            && self.stop_error.is_none();
        if !believable {
            tracing::debug!(node = %self.name, peer = %from, %id, "a Removed frame not for this node; ignored");
            return;
        }
        if self.shutdown.is_some() {
            // A node leaving by its own `shutdown()` is removed as the last
            // step of its leave (sooner now that the leader leaves a joint
            // configuration at once): that is the end it asked for, so its
            // callers are told `Shutdown`, and the facade does not rejoin.
            self.stopped = true;
            return;
        }
        // INFO: what follows is logged where `Removed` is handled (the
        // facade's restart at WARN, or the application).
        tracing::info!(
            node = %self.name,
            id = %self.me,
            "this node was removed from the cluster: this run stops; the next start (at once, with rejoin_when_removed) is blank and joins under a new id"
        );
        self.stop_error = Some(|| Error::Removed);
        let mark = !crate::teeth::planted(crate::teeth::Bug::RemovedKeepsItsState);
        if let Some(on_left) = self.on_left.take().filter(|_| mark) {
            if let Err(e) = on_left() {
                tracing::warn!(node = %self.name, error = %e, "could not mark the data directory as left");
            }
        }
        // The run loop ends on this and finishes: every guard lost, every
        // caller answered with `Removed`.
        self.stopped = true;
    }
}
