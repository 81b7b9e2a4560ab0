//! Test helpers: a small world the planner looks at, applying its changes
//! through a real raft-rs `RawNode`, and an independent restatement of the
//! checks every proposed change must pass.

use std::collections::{BTreeMap, BTreeSet};

use raft::eraftpb::ConfState;
use raft::storage::MemStorage;
use raft::RawNode;

use super::{
    plan, target_voters, Change, ConfView, MemberView, PeerHealth, Plan, PlanConfig, PlanInput,
};
use crate::types::{NodeId, NodeName};

/// Everything the planner reads, owned.
#[derive(Clone, Debug)]
pub(super) struct World {
    pub leader: NodeId,
    pub leader_since_ms: u64,
    pub committed_in_term: bool,
    pub conf_pending: bool,
    pub conf: ConfView,
    pub members: Vec<MemberView>,
    pub health: BTreeMap<NodeId, PeerHealth>,
    pub now_ms: u64,
    pub cfg: PlanConfig,
}

pub(super) fn id(n: u64) -> NodeId {
    NodeId(n)
}

pub(super) fn ids(v: &[u64]) -> Vec<NodeId> {
    v.iter().copied().map(NodeId).collect()
}

pub(super) fn set(v: &[u64]) -> BTreeSet<NodeId> {
    v.iter().copied().map(NodeId).collect()
}

/// A healthy peer, healthy since `since`.
pub(super) fn healthy_since(since: u64, matched: u64) -> PeerHealth {
    PeerHealth {
        live: true,
        caught_up: true,
        healthy_since_ms: Some(since),
        silent_since_ms: None,
        matched,
    }
}

/// A silent peer, silent since `since`.
pub(super) fn silent_since(since: u64) -> PeerHealth {
    PeerHealth {
        live: false,
        caught_up: false,
        healthy_since_ms: None,
        silent_since_ms: Some(since),
        matched: 0,
    }
}

impl World {
    /// A settled leader (node `voters[0]`, leader for 100 s) whose voters and
    /// learners are all members, healthy since time 0 and named `n<id>`.
    pub fn new(voters: &[u64], learners: &[u64]) -> Self {
        let now_ms = 100_000;
        let mut w = Self {
            leader: NodeId(voters.first().copied().unwrap_or(1)),
            leader_since_ms: 0,
            committed_in_term: true,
            conf_pending: false,
            conf: ConfView {
                voters: set(voters),
                learners: set(learners),
                ..ConfView::default()
            },
            members: Vec::new(),
            health: BTreeMap::new(),
            now_ms,
            cfg: PlanConfig::default(),
        };
        for n in voters.iter().chain(learners) {
            w.add_member(*n, &format!("n{n}"));
            w.health.insert(NodeId(*n), healthy_since(0, 100));
        }
        w
    }

    /// A member row (joined, durable, no zone) without touching the conf.
    pub fn add_member(&mut self, n: u64, name: &str) -> &mut MemberView {
        self.members.push(MemberView {
            id: NodeId(n),
            name: NodeName(name.to_owned()),
            durable: true,
            leaving: false,
            zone: None,
            joined_at: n,
        });
        let at = self.members.len() - 1;
        &mut self.members[at]
    }

    pub fn member(&mut self, n: u64) -> &mut MemberView {
        let at = self
            .members
            .iter()
            .position(|m| m.id == NodeId(n))
            .unwrap_or_else(|| panic!("no member {n}"));
        &mut self.members[at]
    }

    /// `n` went silent `ago` ms before now.
    pub fn silence(&mut self, n: u64, ago: u64) {
        self.health
            .insert(NodeId(n), silent_since(self.now_ms.saturating_sub(ago)));
    }

    pub fn input(&self) -> PlanInput<'_> {
        PlanInput {
            leader: self.leader,
            leader_since_ms: self.leader_since_ms,
            committed_in_term: self.committed_in_term,
            conf_pending: self.conf_pending,
            conf: &self.conf,
            members: &self.members,
            health: &self.health,
            now_ms: self.now_ms,
            cfg: &self.cfg,
        }
    }

    pub fn plan(&self) -> Plan {
        plan(&self.input())
    }

    /// Applies `change` as the cluster would: through a real `RawNode` for
    /// configuration changes (and the member table then forgets removed
    /// members), by moving the leadership for a transfer.
    pub fn apply(&mut self, change: &Change) {
        match change.to_conf_change() {
            Some(cc) => {
                let before = self.conf.clone();
                self.conf = apply_via_raft(&self.conf, self.leader, &cc);
                // The member table forgets a member once an applied
                // configuration no longer names it (removed for ever).
                let conf = &self.conf;
                self.members
                    .retain(|m| conf.contains(m.id) || !before.contains(m.id));
            }
            None => {
                if let Change::TransferLeader { to } = change {
                    self.leader = *to;
                    self.leader_since_ms = self.now_ms;
                }
            }
        }
    }
}

pub(super) fn to_conf_state(c: &ConfView) -> ConfState {
    let ids = |s: &BTreeSet<NodeId>| s.iter().map(|n| n.0).collect();
    ConfState {
        voters: ids(&c.voters),
        voters_outgoing: ids(&c.voters_outgoing),
        learners: ids(&c.learners),
        learners_next: ids(&c.learners_next),
        ..ConfState::default()
    }
}

pub(super) fn from_conf_state(cs: &ConfState) -> ConfView {
    let s = |v: &[u64]| v.iter().copied().map(NodeId).collect();
    ConfView {
        voters: s(&cs.voters),
        voters_outgoing: s(&cs.voters_outgoing),
        learners: s(&cs.learners),
        learners_next: s(&cs.learners_next),
    }
}

/// A `RawNode` whose applied configuration is `conf`.
pub(super) fn raw_node(conf: &ConfView, me: NodeId) -> RawNode<MemStorage> {
    let store = MemStorage::new_with_conf_state(to_conf_state(conf));
    let cfg = raft::Config {
        id: me.0,
        ..raft::Config::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    RawNode::new(&cfg, store, &logger).expect("a valid test configuration")
}

/// Applies `cc` to `conf` with raft-rs's own changer; panics if raft-rs
/// refuses it (the test then fails with raft's reason).
pub(super) fn apply_via_raft(
    conf: &ConfView,
    me: NodeId,
    cc: &raft::eraftpb::ConfChangeV2,
) -> ConfView {
    let mut raw = raw_node(conf, me);
    let cs = raw
        .apply_conf_change(cc)
        .unwrap_or_else(|e| panic!("raft refused {cc:?} on {conf:?}: {e}"));
    from_conf_state(&cs)
}

/// The largest odd number not above `k` (0 for 0).
fn odd_floor(k: usize) -> usize {
    if k % 2 == 1 {
        k
    } else {
        k.saturating_sub(1)
    }
}

/// The pre-checks, restated from the design independently of the planner's
/// code: `Err` names the first one a planned change breaks.
pub(super) fn check(w: &World, p: &Plan) -> Result<(), String> {
    let Plan::Change(change) = p else {
        return Ok(());
    };
    let h = |n: NodeId| w.health.get(&n).copied().unwrap_or_default();
    let live = |n: NodeId| n == w.leader || h(n).live;
    let healthy = |n: NodeId| n == w.leader || (h(n).live && h(n).caught_up);
    let stable = |n: NodeId| {
        healthy(n)
            && (n == w.leader
                || h(n)
                    .healthy_since_ms
                    .is_some_and(|s| w.now_ms.saturating_sub(s) >= w.cfg.stabilization_ms))
    };
    let row = |n: NodeId| w.members.iter().find(|m| m.id == n);
    let leaving = |n: NodeId| row(n).is_some_and(|m| m.leaving);
    let watched = w.now_ms.saturating_sub(w.leader_since_ms) >= w.cfg.dead_after_ms;
    let dead = |n: NodeId| {
        !live(n)
            && watched
            && h(n)
                .silent_since_ms
                .is_some_and(|s| w.now_ms.saturating_sub(s) >= w.cfg.dead_after_ms)
    };
    let superseded = |n: NodeId| {
        w.cfg.same_name_supersedes
            && !live(n)
            && row(n).is_some_and(|me| {
                w.members.iter().any(|m| {
                    m.name == me.name
                        && (m.joined_at, m.id) > (me.joined_at, me.id)
                        && !m.leaving
                        && w.conf.contains(m.id)
                        && stable(m.id)
                })
            })
    };
    let count = |s: &BTreeSet<NodeId>| s.iter().filter(|n| healthy(**n)).count();
    let maj = |n: usize| n / 2 + 1;
    let ensure = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };

    ensure(!w.conf_pending, "proposed while a change is pending")?;
    if *change == Change::LeaveJoint {
        ensure(w.conf.is_joint(), "leave-joint outside a joint config")?;
        return ensure(
            w.conf.voters.contains(&w.leader),
            "leave-joint by a leader the new config demotes",
        );
    }
    if let (true, Change::TransferLeader { to }) = (w.conf.is_joint(), change) {
        ensure(!w.conf.voters.contains(&w.leader), "transfer while joint")?;
        ensure(
            w.conf.voters.contains(to),
            "transfer to a voter being demoted",
        )?;
        return ensure(
            healthy(*to) && !leaving(*to),
            "transfer to an unhealthy voter",
        );
    }
    ensure(
        !w.conf.is_joint(),
        "proposed a change other than leave while joint",
    )?;
    ensure(w.committed_in_term, "proposed before committing in term")?;
    if let (false, Change::TransferLeader { to }) = (w.conf.voters.contains(&w.leader), change) {
        // A leader outside the voters (tikv/raft-rs#373) may only hand over.
        ensure(w.conf.voters.contains(to), "transfer to a non-voter")?;
        return ensure(
            healthy(*to) && !leaving(*to),
            "transfer to an unhealthy voter",
        );
    }
    ensure(
        w.conf.voters.contains(&w.leader),
        "planned as a non-voter leader",
    )?;
    match change {
        Change::LeaveJoint => Ok(()),
        Change::TransferLeader { to } => {
            ensure(leaving(w.leader), "transfer while the leader stays")?;
            ensure(*to != w.leader, "transfer to itself")?;
            ensure(w.conf.voters.contains(to), "transfer to a non-voter")?;
            ensure(
                healthy(*to) && !leaving(*to),
                "transfer to an unhealthy or leaving voter",
            )
        }
        Change::AddLearners(add) => {
            ensure(!add.is_empty(), "empty add")?;
            for n in add {
                ensure(row(*n).is_some(), "adding a non-member")?;
                ensure(!w.conf.contains(*n), "adding a configured node")?;
                ensure(!leaving(*n), "adding a leaving member")?;
            }
            Ok(())
        }
        Change::Remove(rm) => {
            ensure(!rm.is_empty(), "empty remove")?;
            for n in rm {
                ensure(*n != w.leader, "removing the leader")?;
                ensure(w.conf.learners.contains(n), "removing a non-learner")?;
                ensure(
                    leaving(*n) || dead(*n) || superseded(*n),
                    "removing a wanted learner",
                )?;
            }
            Ok(())
        }
        Change::Joint { promote, demote } => {
            ensure(!promote.is_empty() || !demote.is_empty(), "empty joint")?;
            ensure(!demote.contains(&w.leader), "demoting the leader")?;
            for n in promote {
                ensure(w.conf.learners.contains(n), "promoting a non-learner")?;
                ensure(stable(*n), "promoting an unstable learner")?;
                ensure(!leaving(*n), "promoting a leaving learner")?;
            }
            for n in demote {
                ensure(w.conf.voters.contains(n), "demoting a non-voter")?;
            }
            let mut new = w.conf.voters.clone();
            for n in demote {
                new.remove(n);
            }
            new.extend(promote.iter().copied());
            ensure(new.contains(&w.leader), "new config without the leader")?;
            ensure(
                count(&w.conf.voters) >= maj(w.conf.voters.len()),
                "no live majority of C_old",
            )?;
            ensure(count(&new) >= maj(new.len()), "no live majority of C_new")?;
            if leaving(w.leader) {
                return ensure(
                    demote.is_empty() && promote.len() == 1,
                    "a leaving leader only grows an heir",
                );
            }
            ensure(new.len() % 2 == 1, "an even voter count")?;
            ensure(
                new.len() <= w.cfg.max_voters.max(1),
                "more voters than max_voters",
            )?;
            let staying = w.conf.voters.iter().filter(|n| !leaving(**n)).count();
            let floor = odd_floor(w.cfg.min_voters.min(w.cfg.max_voters).min(staying));
            let voluntary = demote.iter().any(|n| leaving(*n));
            ensure(
                voluntary || new.len() >= floor,
                "shrunk below min_voters involuntarily",
            )?;
            // Every demotion is of a leaving, superseded or dead voter, or of
            // one over the target (the new set still has the target).
            let eligible = w
                .conf
                .voters
                .iter()
                .filter(|n| !leaving(**n) && !dead(**n) && !superseded(**n))
                .count()
                + w.conf
                    .learners
                    .iter()
                    .filter(|l| healthy(**l) && !leaving(**l))
                    .count();
            let target = target_voters(eligible, w.cfg.max_voters);
            for n in demote {
                ensure(
                    leaving(*n) || superseded(*n) || dead(*n) || new.len() >= target,
                    "demoted a wanted voter below the target",
                )?;
            }
            Ok(())
        }
    }
}
