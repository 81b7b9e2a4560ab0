//! What the driver sends of raft-rs's messages: grouped by peer, one
//! transport call each, and fewer heartbeats to learners.
//!
//! **Learners get one heartbeat in [`LEARNER_HEARTBEAT_EVERY`]** (issue 10,
//! curve 4: the leader's idle CPU grew with the members, 2 % of a core at
//! 25 nodes, nearly all of it heartbeats and their answers, and 20 of the
//! 24 peers were learners). raft-rs broadcasts every heartbeat to every
//! progress, learners included (`bcast_heartbeat_with_ctx`), but what a
//! heartbeat does for a voter a learner does not need at that rate:
//!
//! - a learner never campaigns (raft-rs `promotable` is false), so its
//!   election timer needs no resetting;
//! - a ReadIndex round counts only the voters' acknowledgements
//!   (`has_quorum` over the voter configuration; Raft dissertation §6.4),
//!   so a learner's acknowledgement of a keepalive round confirms nothing;
//! - commit indexes travel on appends as well, which are not thinned.
//!
//! What a learner's heartbeat is still for, and why one in three keeps it
//! (default timing: one every 300 ms against the election timeout of
//! 500 ms): the leader's health watch counts a member live when it
//! answered within two election timeouts (`reconcile.rs`), so three
//! heartbeats fall in every window; the learner's answer resumes a paused
//! progress and restarts a lost append, now within 300 ms instead of
//! 100 ms; and the learner stays "in lease" (raft-rs refuses a vote to a
//! disruptive candidate within an election timeout of hearing the leader;
//! learners may vote in raft-rs, for a candidate that knows them promoted).
//! Dropping a heartbeat is what a lossy network does to raft-rs anyway,
//! so no Raft guarantee rests on it; TiKV goes further and stops idle
//! regions' heartbeats altogether (its "hibernate regions").

use std::collections::{BTreeMap, HashMap};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

use super::Driver;
use super::TIMELINE;
use crate::storage::LogStore;
use crate::transport::PeerMessage;
use crate::types::NodeId;

/// A learner gets one heartbeat in this many (see the module docs).
pub(crate) const LEARNER_HEARTBEAT_EVERY: u32 = 3;

/// Which heartbeats to learners go out: a count per learner of the
/// heartbeats held back since the last one sent.
#[derive(Debug, Default)]
pub(crate) struct LearnerBeats {
    held: HashMap<u64, u32>,
}

impl LearnerBeats {
    /// Whether `m` is sent: anything but a heartbeat to a learner always;
    /// a learner's first heartbeat, then one in [`LEARNER_HEARTBEAT_EVERY`].
    pub(crate) fn keep(&mut self, m: &Message, is_learner: impl Fn(u64) -> bool) -> bool {
        if m.get_msg_type() != MessageType::MsgHeartbeat || !is_learner(m.to) {
            return true;
        }
        let held = self.held.entry(m.to).or_insert(LEARNER_HEARTBEAT_EVERY);
        if *held + 1 >= LEARNER_HEARTBEAT_EVERY {
            *held = 0;
            true
        } else {
            *held += 1;
            false
        }
    }

    /// Forgets the peers that are no longer learners.
    fn prune(&mut self, is_learner: impl Fn(u64) -> bool) {
        self.held.retain(|id, _| is_learner(*id));
    }

    fn len(&self) -> usize {
        self.held.len()
    }
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Sends raft messages, grouped by destination; while leading, learners
    /// get one heartbeat in [`LEARNER_HEARTBEAT_EVERY`].
    pub(super) fn send_raft(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let prs = self.raw.raft.prs();
        let voters = prs.conf().voters();
        // In the progress and a voter in neither half of a joint
        // configuration (a voter being demoted still gets every heartbeat).
        let is_learner = |id: u64| prs.get(id).is_some() && !voters.contains(id);
        let mut beats = self.leader.as_mut().map(|d| &mut d.learner_beats);
        if let Some(b) = beats.as_mut().filter(|b| b.len() > prs.iter().len() + 16) {
            b.prune(is_learner);
        }
        let mut by_peer: BTreeMap<u64, Vec<PeerMessage>> = BTreeMap::new();
        for m in msgs {
            if let Some(b) = beats.as_mut() {
                if !b.keep(&m, is_learner) {
                    continue;
                }
            }
            tracing::trace!(target: TIMELINE, node = %self.name, to = m.to, kind = ?m.get_msg_type(), index = m.index, entries = m.entries.len(), "send");
            crate::metrics::raft_sent(&m);
            match m.write_to_bytes() {
                Ok(bytes) => by_peer
                    .entry(m.to)
                    .or_default()
                    .push(PeerMessage::Raft(bytes)),
                Err(e) => {
                    tracing::error!(node = %self.name, error = %e, "raft message failed to encode")
                }
            }
        }
        for (to, batch) in by_peer {
            match self.key_of(NodeId(to)) {
                Some(key) => self.transport.send(key, batch),
                None => {
                    tracing::debug!(node = %self.name, to, "raft message for an unknown member; dropped")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: MessageType, to: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(kind);
        m.to = to;
        m
    }

    /// A learner (id 9) gets its first heartbeat and then one in three; a
    /// voter (id 2) every one; appends to the learner are never held back.
    #[test]
    fn issue_10_a_learner_gets_one_heartbeat_in_three_and_every_append() {
        let mut beats = LearnerBeats::default();
        let is_learner = |id: u64| id == 9;
        let sent: Vec<bool> = (0..9)
            .map(|_| beats.keep(&msg(MessageType::MsgHeartbeat, 9), is_learner))
            .collect();
        assert_eq!(
            sent,
            [true, false, false, true, false, false, true, false, false]
        );
        assert!((0..9).all(|_| beats.keep(&msg(MessageType::MsgHeartbeat, 2), is_learner)));
        assert!((0..9).all(|_| beats.keep(&msg(MessageType::MsgAppend, 9), is_learner)));
        // Promoted: every heartbeat again.
        assert!((0..9).all(|_| beats.keep(&msg(MessageType::MsgHeartbeat, 9), |_| false)));
        beats.prune(|_| false);
        assert_eq!(beats.len(), 0);
    }
}
