//! [`plan`]: the rules of the module docs, in their priority order.

use crate::collect::btree_set;
use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::health::{majority, Judge};
use super::{Change, Plan, PlanInput, SkipReason};
use crate::types::NodeId;

/// The number of voters wanted: the largest odd number not above
/// `max_voters` and `eligible`, and at least 1. An even count tolerates no
/// more failures than the odd count below it and needs one more answer.
pub fn target_voters(eligible: usize, max_voters: usize) -> usize {
    odd_floor(eligible.min(max_voters)).max(1)
}

/// The largest odd number not above `k` (0 for 0).
fn odd_floor(k: usize) -> usize {
    if k % 2 == 1 {
        k
    } else {
        k.saturating_sub(1)
    }
}

/// The next configuration change for the leader to propose, if any.
///
/// Pure: the same input gives the same plan. See the module docs for the
/// rules and the checks.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    if input.conf_pending {
        return Plan::Skip(SkipReason::Pending);
    }
    // Rule 1: leave a joint configuration, whatever else holds, unless this
    // leader is itself being demoted: a leader elected from the outgoing half
    // would lead as a learner once the joint configuration is left, and
    // raft-rs does not step it down (tikv/raft-rs#373). Hand over first.
    if input.conf.is_joint() {
        if crate::teeth::planted(crate::teeth::Bug::RelyOnAutoLeave) {
            return Plan::Idle;
        }
        if input.conf.voters.contains(&input.leader)
            || crate::teeth::planted(crate::teeth::Bug::RemoveLeaderWithoutTransfer)
        {
            return Plan::Change(Change::LeaveJoint);
        }
        let j = Judge::new(input);
        return match transfer_target(&j, &BTreeSet::new()) {
            Some(to) => Plan::Change(Change::TransferLeader { to }),
            None => Plan::Skip(SkipReason::NoTransferTarget),
        };
    }
    if !input.committed_in_term {
        return Plan::Skip(SkipReason::NotCommittedInTerm);
    }
    let j = Judge::new(input);
    if !input.conf.voters.contains(&input.leader) {
        // (The planted bugs that strand a leader leave this out too.)
        let hand_over = !crate::teeth::planted(crate::teeth::Bug::RemoveLeaderWithoutTransfer)
            && !crate::teeth::planted(crate::teeth::Bug::RelyOnAutoLeave);
        // A leader that is not a voter: leadership moved to a demoted voter
        // while a leave-joint it did not propose was in flight, and that
        // entry committed. raft-rs does not step it down (tikv/raft-rs#373),
        // and it may plan nothing while it leads as a learner: hand over.
        return match transfer_target(&j, &BTreeSet::new()).filter(|_| hand_over) {
            Some(to) => Plan::Change(Change::TransferLeader { to }),
            None => Plan::Skip(SkipReason::LeaderNotVoter),
        };
    }
    // Rule 2: members that joined become learners (no quorum effect).
    let add = learners_to_add(&j);
    if !add.is_empty() {
        return Plan::Change(Change::AddLearners(add));
    }
    // Rules 3 to 6: the voters.
    let voters = plan_voters(&j);
    if let Ok(Some(change)) = voters {
        return Plan::Change(change);
    }
    // Rule 7: removals have no quorum effect, so a voter change that must
    // wait does not hold them back.
    let remove = learners_to_remove(&j);
    if !remove.is_empty() {
        return Plan::Change(Change::Remove(remove));
    }
    match voters {
        Err(reason) => Plan::Skip(reason),
        Ok(_) => Plan::Idle,
    }
}

/// Members not in the configuration that should be: not leaving, and not an
/// older incarnation of a name that has a newer member.
fn learners_to_add(j: &Judge<'_, '_>) -> Vec<NodeId> {
    let ids: BTreeSet<NodeId> = btree_set(
        j.input
            .members
            .iter()
            .filter(|m| !j.input.conf.contains(m.id) && !m.leaving && !j.stale(m.id))
            .map(|m| m.id),
    );
    ids.into_iter().collect()
}

/// Learners that should go: leaving (a demoted leaver among them),
/// superseded by a newer incarnation, or dead.
fn learners_to_remove(j: &Judge<'_, '_>) -> Vec<NodeId> {
    j.input
        .conf
        .learners
        .iter()
        .copied()
        .filter(|l| *l != j.input.leader && (j.leaving(*l) || j.superseded(*l) || j.dead(*l)))
        .collect()
}

/// Rules 3 to 6. `Ok(None)`: the voters are as wanted. `Err`: a change is
/// wanted and may not be proposed yet.
fn plan_voters(j: &Judge<'_, '_>) -> Result<Option<Change>, SkipReason> {
    let input = j.input;
    let cfg = input.cfg;
    let voters = &input.conf.voters;
    let skip_check = crate::teeth::planted(crate::teeth::Bug::SkipLiveMajorityCheck);
    if j.healthy_count(voters) < majority(voters.len()) && !skip_check {
        return Err(SkipReason::NoLiveMajority);
    }
    let out: BTreeSet<NodeId> = btree_set(
        voters
            .iter()
            .copied()
            .filter(|v| *v != input.leader && (j.leaving(*v) || j.dead(*v) || j.superseded(*v))),
    );
    // Rule 3: the leader never demotes itself; it hands over first.
    if j.leaving(input.leader) {
        return leader_leaves(j, &out);
    }
    let keep: BTreeSet<NodeId> = btree_set(voters.difference(&out).copied());
    let healthy_learners: Vec<NodeId> = input
        .conf
        .learners
        .iter()
        .copied()
        .filter(|l| (skip_check || j.healthy(*l)) && !j.leaving(*l))
        .collect();
    let candidates: Vec<NodeId> = healthy_learners
        .iter()
        .copied()
        .filter(|l| skip_check || j.stable(*l))
        .collect();
    // Voters count until judged dead, so a restart shorter than
    // `dead_after_ms` changes nothing.
    let eligible = keep.len() + healthy_learners.len();
    let staying = voters.iter().filter(|v| !j.leaving(**v)).count();
    let floor = odd_floor(cfg.min_voters.min(cfg.max_voters).min(staying));
    let size = target_voters(eligible, cfg.max_voters).max(floor);

    let mut promote = Vec::new();
    let mut demote: BTreeSet<NodeId> = out.clone();
    let mut new = keep.clone();
    if keep.len() >= size {
        // Rules 5/6: shrink (or hold) to the target, never choosing the leader.
        for v in choose_demotions(j, &keep, keep.len() - size) {
            new.remove(&v);
            demote.insert(v);
        }
    } else {
        let need = size - keep.len();
        promote = choose_promotions(j, &keep, &candidates, need);
        new.extend(promote.iter().copied());
        if promote.len() < need {
            if healthy_learners.len() > candidates.len() {
                // A learner that will be stable within seconds fills the gap:
                // wait for it rather than resting at an even count or
                // shrinking and growing again.
                return Err(SkipReason::Stabilizing);
            }
            // Only the floor asks for more: keep dead voters (never leavers),
            // but never so many that the live voters lose their majority. That
            // happens only when leavers go too: keeping the dead would strand
            // the group once the leavers stop, and a voluntary leave may go
            // below `min_voters`.
            let refill = out.iter().copied().filter(|v| !j.leaving(*v));
            for v in refill {
                if new.len() >= size {
                    break;
                }
                new.insert(v);
                if j.healthy_count(&new) < majority(new.len()) && !skip_check {
                    new.remove(&v);
                    break;
                }
                demote.remove(&v);
            }
        }
    }
    if promote.is_empty() && demote.is_empty() {
        if !out.is_empty() {
            return Err(SkipReason::MinVoters);
        }
        if voters.iter().any(|v| j.silent_long(*v)) && !j.watched_long_enough() {
            return Err(SkipReason::Settling);
        }
        return Ok(None);
    }
    if j.healthy_count(&new) < majority(new.len()) && !skip_check {
        return Err(SkipReason::NoLiveMajority);
    }
    Ok(Some(Change::Joint {
        promote,
        demote: demote.into_iter().collect(),
    }))
}

/// Rule 3: the leader is leaving. Hand over to the most caught-up healthy
/// voter that stays; with none, promote a stable learner first so that one
/// can take over.
fn leader_leaves(j: &Judge<'_, '_>, out: &BTreeSet<NodeId>) -> Result<Option<Change>, SkipReason> {
    let input = j.input;
    if let Some(to) = transfer_target(j, out) {
        return Ok(Some(Change::TransferLeader { to }));
    }
    let candidates: Vec<NodeId> = input
        .conf
        .learners
        .iter()
        .copied()
        .filter(|l| j.stable(*l) && !j.leaving(*l))
        .collect();
    let keep: BTreeSet<NodeId> = btree_set(input.conf.voters.difference(out).copied());
    let Some(heir) = choose_promotions(j, &keep, &candidates, 1).pop() else {
        return Err(SkipReason::NoTransferTarget);
    };
    let mut new = input.conf.voters.clone();
    new.insert(heir);
    if j.healthy_count(&new) < majority(new.len()) {
        return Err(SkipReason::NoLiveMajority);
    }
    Ok(Some(Change::Joint {
        promote: vec![heir],
        demote: Vec::new(),
    }))
}

/// The healthy voter (of the incoming half) not in `out` that is most caught
/// up, then longest healthy, then lowest id; never the leader.
fn transfer_target(j: &Judge<'_, '_>, out: &BTreeSet<NodeId>) -> Option<NodeId> {
    j.input
        .conf
        .voters
        .iter()
        .copied()
        .filter(|v| *v != j.input.leader && !out.contains(v) && j.healthy(*v) && !j.leaving(*v))
        .min_by_key(|v| (Reverse(j.matched(*v)), j.healthy_since(*v), *v))
}

/// The zone of `id`, if it has a member row and a zone.
fn zone<'a>(j: &Judge<'a, '_>, id: NodeId) -> Option<&'a str> {
    j.member(id).and_then(|m| m.zone.as_deref())
}

/// Up to `n` of `candidates` to promote, best first: durable, then a zone
/// not yet among the voters, then longest healthy, then lowest id.
fn choose_promotions(
    j: &Judge<'_, '_>,
    keep: &BTreeSet<NodeId>,
    candidates: &[NodeId],
    n: usize,
) -> Vec<NodeId> {
    let mut zones: BTreeSet<&str> = btree_set(keep.iter().filter_map(|v| zone(j, *v)));
    let mut left: Vec<NodeId> = candidates.to_vec();
    let mut chosen = Vec::new();
    while chosen.len() < n {
        let best = left.iter().copied().enumerate().min_by_key(|(_, c)| {
            let durable = j.member(*c).is_some_and(|m| m.durable);
            let new_zone = zone(j, *c).is_some_and(|z| !zones.contains(z));
            (!durable, !new_zone, j.healthy_since(*c), *c)
        });
        let Some((at, c)) = best else { break };
        left.swap_remove(at);
        if let Some(z) = zone(j, c) {
            zones.insert(z);
        }
        chosen.push(c);
    }
    chosen
}

/// `n` voters of `keep` to demote, never the leader, worst first: not
/// healthy, then not durable, then sharing its zone, then shortest healthy,
/// then highest id.
fn choose_demotions(j: &Judge<'_, '_>, keep: &BTreeSet<NodeId>, n: usize) -> Vec<NodeId> {
    let mut left: BTreeSet<NodeId> = keep.clone();
    let mut chosen = Vec::new();
    while chosen.len() < n {
        let worst = left
            .iter()
            .copied()
            .filter(|v| *v != j.input.leader)
            .min_by_key(|v| {
                let durable = j.member(*v).is_some_and(|m| m.durable);
                let own_zone = zone(j, *v)
                    .is_some_and(|z| left.iter().filter(|o| zone(j, **o) == Some(z)).count() == 1);
                (
                    j.healthy(*v),
                    durable,
                    own_zone,
                    Reverse(j.healthy_since(*v)),
                    Reverse(*v),
                )
            });
        let Some(v) = worst else { break };
        left.remove(&v);
        chosen.push(v);
    }
    chosen
}
