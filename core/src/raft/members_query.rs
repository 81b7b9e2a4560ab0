//! `members()`: the member list, linearizable, with liveness as the leader
//! judges it (issue 9).
//!
//! The list comes from this node's applied member table and configuration,
//! after a ReadIndex round confirmed it is current (like `holder()`). Only
//! the leader watches its peers' answers, so a follower asks the leader for
//! the live set ([`PeerMessage::LiveAsk`]) and answers its caller when the
//! leader replies, or with `NoQuorum` at the read's deadline.

use crate::collect::{id_key, sort_by_u128};
use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Driver;
use crate::client::{MemberInfo, MemberRole, MemberStatus};
use crate::error::Error;
use crate::storage::LogStore;
use crate::transport::PeerMessage;
use crate::types::NodeId;

type Reply = oneshot::Sender<Result<Vec<MemberInfo>, Error>>;

/// `members()` calls waiting for the leader's live set, in the order
/// asked. A list, not a map: at most `MAX_CALLS_IN_FLIGHT` calls wait, and
/// a map's code for one more key and value type was 10 KiB of every
/// application's binary (issue 12, item 9).
#[derive(Debug, Default)]
pub(crate) struct LiveAsks {
    next: u64,
    waiting: Vec<Waiting>,
}

/// One `members()` call waiting for the leader's answer to question `seq`.
#[derive(Debug)]
struct Waiting {
    seq: u64,
    list: Vec<MemberInfo>,
    reply: Reply,
    deadline: Instant,
}

/// Above this many members, a burst of membership changes rebuilds
/// `status().members` at most once per 1 ms per member (1 s at 1 000). The
/// rebuild is O(members), and while many nodes join, changes commit a few
/// times a tick: on every node of a forming 1 000-node cluster it was the
/// largest cost (issue 10, curve 5). A change after a quiet spell is
/// published at once; a burst's last one at a tick once that time passed.
/// Up to this size every change is published at once, as before: callers
/// read `status()` right after `members()` showed a change (t64).
/// `members()` is read from the applied table, current and linearizable.
pub(crate) const STATUS_PACED_ABOVE: usize = 100;

/// When `status().members` was last rebuilt, and whether a change since
/// waits for the next rebuild.
#[derive(Debug, Default)]
pub(crate) struct StatusPace {
    last: Option<Instant>,
    behind: bool,
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// A membership change applied: rebuild `status().members` now, or at
    /// a tick once its pace ([`STATUS_PACED_ABOVE`]) has passed since the last time.
    pub(super) fn member_status_changed(&mut self, now: Instant) {
        let members = self.table.members().len();
        let every = if members > STATUS_PACED_ABOVE {
            Duration::from_millis(1) * u32::try_from(members).unwrap_or(u32::MAX)
        } else {
            Duration::ZERO
        };
        let due = (self.status_pace.last).is_none_or(|t| now.saturating_duration_since(t) >= every);
        if due {
            self.refresh_member_status();
        } else {
            self.status_pace.behind = true;
        }
    }

    /// At a tick: the rebuild a burst of changes put off, if it is due.
    pub(super) fn member_status_catch_up(&mut self, now: Instant) {
        if self.status_pace.behind {
            self.member_status_changed(now);
        }
    }

    /// The members as this node applied them, not yet marked live.
    fn member_list(&self) -> Vec<MemberInfo> {
        let cs = self.raw.raft.prs().conf().to_conf_state();
        // In a joint configuration the one being left still decides (a
        // majority of each half must agree, Raft dissertation §4.3): a
        // member is listed as a voter by that half until the leave-joint
        // entry applies. Listing the incoming half too showed three voters
        // after a 1 → 3 promotion while the founder alone could still
        // stop every commit (issue 9, a newcomer's finding 6).
        let deciding = if cs.voters_outgoing.is_empty() {
            &cs.voters
        } else {
            &cs.voters_outgoing
        };
        let voter = |id: u64| deciding.contains(&id);
        // A set, not a scan of the lists per member: with n learners that
        // was n^2 on every node at every membership change (issue 10,
        // curve 5). The voters are at most a handful.
        let conf: HashSet<u64> = (cs.voters.iter())
            .chain(&cs.voters_outgoing)
            .chain(&cs.learners)
            .chain(&cs.learners_next)
            .copied()
            .collect();
        let in_conf = |id: u64| conf.contains(&id);
        self.table
            .members()
            .iter()
            .filter(|m| in_conf(m.id.0))
            .map(|m| MemberInfo {
                id: m.id,
                name: m.name.clone(),
                addr: m.addr,
                role: if voter(m.id.0) {
                    MemberRole::Voter
                } else {
                    MemberRole::Learner
                },
                live: false,
                durable: m.durable,
                zone: m.zone.clone(),
                leaving: m.leaving,
            })
            .collect()
    }

    /// Publishes the applied members in `status().members`, voters first.
    pub(super) fn refresh_member_status(&mut self) {
        let now = self.clock.now();
        self.status_pace = StatusPace {
            last: Some(now),
            behind: false,
        };
        let live = self.live_set(now);
        let mut members: Vec<MemberStatus> = self
            .member_list()
            .into_iter()
            .map(|m| MemberStatus {
                id: m.id,
                name: m.name,
                addr: m.addr,
                voter: m.role == MemberRole::Voter,
                role: m.role,
                live: live.as_ref().map(|l| l.binary_search(&m.id).is_ok()),
                durable: m.durable,
                zone: m.zone,
                leaving: m.leaving,
            })
            .collect();
        sort_by_u128(&mut members, |m| id_key(u64::from(!m.voter), m.id));
        self.status_tx.send_if_modified(|s| {
            let changed = s.members != members;
            s.members = members;
            changed
        });
    }

    /// The ids this node, as leader, heard from within two election
    /// timeouts, itself included; `None` when it does not lead.
    fn live_set(&self, now: Instant) -> Option<Vec<NodeId>> {
        let term = self.raw.raft.term;
        let duty = self.leader.as_ref().filter(|d| d.is_for(term))?;
        let window = self.cfg.election_timeout() * 2;
        let mut live = duty.watch.live(now, window);
        live.push(self.me);
        // Sorted: looked up once per member (`refresh_member_status`).
        live.sort_unstable();
        Some(live)
    }

    /// A `members()` read was confirmed and applied here: answer it, or
    /// ask the leader which members are live.
    pub(super) fn answer_members(&mut self, reply: Reply, deadline: Instant) {
        let mut list = self.member_list();
        let now = self.clock.now();
        if let Some(live) = self.live_set(now) {
            mark_live(&mut list, &live);
            let _ = reply.send(Ok(list));
            return;
        }
        let Some(leader) = self.leader_id().and_then(|l| self.key_of(l)) else {
            let _ = reply.send(Err(Error::NoQuorum));
            return;
        };
        let asks = &mut self.live_asks;
        asks.next += 1;
        let seq = asks.next;
        asks.waiting.push(Waiting {
            seq,
            list,
            reply,
            deadline,
        });
        self.transport
            .send(leader, vec![PeerMessage::LiveAsk { seq }]);
    }

    /// The leader answers a follower's question; anyone else stays silent
    /// (the follower's call fails at its deadline).
    pub(super) fn on_live_ask(&mut self, from: NodeId, seq: u64, now: Instant) {
        if let Some(live) = self.live_set(now) {
            let live = live.into_iter().map(|id| id.0).collect();
            self.transport
                .send(from, vec![PeerMessage::LiveTell { seq, live }]);
        }
    }

    /// The leader answered: complete the waiting call.
    pub(super) fn on_live_tell(&mut self, seq: u64, live: Vec<u64>) {
        let waiting = &mut self.live_asks.waiting;
        if let Some(at) = waiting.iter().position(|w| w.seq == seq) {
            let Waiting {
                mut list, reply, ..
            } = waiting.remove(at);
            let live: Vec<NodeId> = live.into_iter().map(NodeId).collect();
            mark_live(&mut list, &live);
            let _ = reply.send(Ok(list));
        }
    }

    /// Fails the calls whose leader did not answer by their deadline.
    pub(super) fn expire_live_asks(&mut self, now: Instant) {
        if !self.live_asks.waiting.iter().any(|w| now >= w.deadline) {
            return;
        }
        let (late, waiting): (Vec<Waiting>, Vec<Waiting>) =
            std::mem::take(&mut self.live_asks.waiting)
                .into_iter()
                .partition(|w| now >= w.deadline);
        self.live_asks.waiting = waiting;
        for w in late {
            let _ = w.reply.send(Err(Error::NoQuorum));
        }
    }

    /// Fails every waiting call (shutdown).
    pub(super) fn fail_live_asks(&mut self, err: fn() -> Error) {
        for w in std::mem::take(&mut self.live_asks.waiting) {
            let _ = w.reply.send(Err(err()));
        }
    }
}

fn mark_live(list: &mut [MemberInfo], live: &[NodeId]) {
    let live: HashSet<NodeId> = live.iter().copied().collect();
    for m in list {
        m.live = live.contains(&m.id);
    }
}
