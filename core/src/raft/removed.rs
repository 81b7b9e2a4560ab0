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
/// node, since when it has been a non-voter without a leader (see
/// [`Driver::probe_if_orphaned`]).
#[derive(Debug, Default)]
pub(super) struct Told(HashMap<NodeId, Instant>, Option<Instant>, Option<Instant>);

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
            .0
            .get(&key)
            .is_none_or(|at| now.saturating_duration_since(*at) >= TELL_EVERY);
        if due && !crate::teeth::planted(crate::teeth::Bug::SilentToRemoved) {
            if self.told.0.len() >= TOLD_MAX {
                self.told.0.clear();
            }
            self.told.0.insert(key, now);
            tracing::warn!(node = %self.name, peer = %key, %id, "a removed member still sends; telling it");
            self.transport
                .send(key, vec![PeerMessage::Removed { cluster_id, id }]);
        }
        true
    }

    /// A learner without a leader asks its peers whether it is still a
    /// member. A removed voter learns it from the answer to its first
    /// pre-vote; a learner never campaigns, and the leader no longer sends
    /// to an id it removed, so a learner removed while it was down (and
    /// back from its disk), or cut off, would otherwise wait in silence for
    /// ever. After two election timeouts with no leader, and then every
    /// two, it sends each member of its table a probe: a Raft message of a
    /// type raft-rs only ever reports locally (`MsgUnreachable`), which a
    /// peer drops unread, unless the sender's id is removed, which
    /// [`Self::sent_by_removed`] answers with `Removed` first. (Found by
    /// the simulator: a learner removed while crashed stayed a silent
    /// non-member after its restart; so did a joiner removed before its
    /// first snapshot, back from its disk with no table.)
    pub(super) fn probe_if_orphaned(&mut self, now: Instant) {
        let voter = self.raw.raft.prs().conf().voters().contains(self.me.0);
        if voter || self.leader_id().is_some() || self.stopped {
            self.told.1 = None;
            return;
        }
        let every = self.cfg.election_timeout() * 2;
        let since = *self.told.1.get_or_insert(now);
        let due = self.told.2.is_none_or(|at| now >= at);
        if now.saturating_duration_since(since) < every || !due {
            return;
        }
        self.told.2 = Some(now + every);
        // Before its first snapshot a joiner has no table: it asks the
        // members it was told when it joined.
        let peers: Vec<NodeId> = if self.table.members().is_empty() {
            self.directory.keys().copied().collect()
        } else {
            self.table.members().iter().map(|m| m.id).collect()
        };
        let peers = peers.into_iter().filter(|id| *id != self.me);
        for id in peers {
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
