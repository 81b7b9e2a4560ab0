//! Planner properties over random reachable states: every proposed change
//! passes the pre-checks (restated independently in `testkit::check`) and is
//! accepted by raft-rs's own changer; nothing but leave-joint while joint,
//! nothing while pending, never the leader demoted or removed; and with
//! every member healthy, the voters reach the target in one voter change.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::testkit::{apply_via_raft, check, healthy_since, World};
use super::{target_voters, Change, ConfView, MemberView, PeerHealth, Plan, PlanConfig};
use crate::types::{NodeId, NodeName};

/// One node of a generated state.
#[derive(Clone, Debug)]
struct NodeGen {
    /// 0 and 3 voter, 1 learner, 2 joined but not in the configuration.
    role: u8,
    /// In the outgoing half, if the state is joint.
    outgoing: bool,
    leaving: bool,
    durable: bool,
    zone: u8,
    name: u8,
    no_row: bool,
    has_health: bool,
    live: bool,
    caught_up: bool,
    healthy_age: u64,
    silent_age: u64,
    matched: u64,
}

fn arb_node() -> impl Strategy<Value = NodeGen> {
    (
        (
            0u8..3,
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.15),
        ),
        (any::<bool>(), 0u8..4, 0u8..6, prop::bool::weighted(0.05)),
        (
            prop::bool::weighted(0.95),
            prop::bool::weighted(0.75),
            prop::bool::weighted(0.85),
        ),
        (0u64..12_000, 0u64..40_000, 0u64..100),
    )
        .prop_map(
            |(
                (role, outgoing, leaving),
                (durable, zone, name, no_row),
                (has_health, live, caught_up),
                (healthy_age, silent_age, matched),
            )| NodeGen {
                role,
                outgoing,
                leaving,
                durable,
                zone,
                name,
                no_row,
                has_health,
                live,
                caught_up,
                healthy_age,
                silent_age,
                matched,
            },
        )
}

fn arb_cfg() -> impl Strategy<Value = PlanConfig> {
    (1usize..=7, 1usize..=5, any::<bool>()).prop_map(|(max_voters, min_voters, same)| PlanConfig {
        max_voters,
        min_voters,
        same_name_supersedes: same,
        ..PlanConfig::default()
    })
}

/// A random state a cluster can be in: a valid (possibly joint)
/// configuration whose leader is a voter, members, health, times.
fn arb_world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(arb_node(), 1..=9),
        arb_cfg(),
        (prop::bool::weighted(0.15), prop::bool::weighted(0.85)),
        (prop::bool::weighted(0.1), 0u64..40_000, 0usize..9),
    )
        .prop_map(
            |(nodes, cfg, (joint, committed), (pending, led_for, leader_at))| {
                let now_ms = 1_000_000;
                let mut conf = ConfView::default();
                let mut members = Vec::new();
                let mut health = BTreeMap::new();
                for (i, g) in nodes.iter().enumerate() {
                    let n = NodeId(i as u64 + 1);
                    match g.role {
                        0 => {
                            conf.voters.insert(n);
                            if joint && g.outgoing {
                                conf.voters_outgoing.insert(n);
                            }
                        }
                        1 if joint && g.outgoing => {
                            // A voter being demoted in the joint configuration.
                            conf.voters_outgoing.insert(n);
                            conf.learners_next.insert(n);
                        }
                        1 => {
                            conf.learners.insert(n);
                        }
                        _ => {}
                    }
                    if !g.no_row {
                        members.push(MemberView {
                            id: n,
                            name: NodeName(format!("name{}", g.name)),
                            durable: g.durable,
                            leaving: g.leaving,
                            zone: (g.zone > 0).then(|| format!("z{}", g.zone)),
                            joined_at: i as u64 + 1,
                        });
                    }
                    if g.has_health {
                        let healthy = g.live && g.caught_up;
                        health.insert(
                            n,
                            PeerHealth {
                                live: g.live,
                                caught_up: g.caught_up,
                                healthy_since_ms: healthy.then(|| now_ms - g.healthy_age),
                                silent_since_ms: (!g.live).then(|| now_ms - g.silent_age),
                                matched: g.matched,
                            },
                        );
                    }
                }
                if conf.voters.is_empty() {
                    conf.voters.insert(NodeId(1));
                    conf.learners.remove(&NodeId(1));
                    conf.learners_next.remove(&NodeId(1));
                    conf.voters_outgoing.remove(&NodeId(1));
                }
                if joint && conf.voters_outgoing.is_empty() {
                    conf.voters_outgoing = conf.voters.clone();
                }
                // While joint, a voter of either half can lead.
                let voters: Vec<NodeId> =
                    conf.voters.union(&conf.voters_outgoing).copied().collect();
                let leader = voters[leader_at % voters.len()];
                World {
                    leader,
                    leader_since_ms: now_ms - led_for,
                    committed_in_term: committed,
                    conf_pending: pending,
                    conf,
                    members,
                    health,
                    now_ms,
                    cfg,
                }
            },
        )
}

/// A state where every member is healthy, stable, not leaving, and has a
/// unique name; some members are not yet in the configuration.
fn arb_healthy_world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec((0u8..3, any::<bool>(), 0u8..4), 1..=9),
        arb_cfg(),
        0usize..9,
    )
        .prop_map(|(nodes, cfg, leader_at)| {
            let mut conf = ConfView::default();
            let mut members = Vec::new();
            let mut health = BTreeMap::new();
            for (i, (role, durable, zone)) in nodes.iter().enumerate() {
                let n = NodeId(i as u64 + 1);
                match role {
                    0 => conf.voters.insert(n),
                    1 => conf.learners.insert(n),
                    _ => false,
                };
                members.push(MemberView {
                    id: n,
                    name: NodeName(format!("n{}", n.0)),
                    durable: *durable,
                    leaving: false,
                    zone: (*zone > 0).then(|| format!("z{zone}")),
                    joined_at: n.0,
                });
                health.insert(n, healthy_since(0, 100));
            }
            if conf.voters.is_empty() {
                conf.voters.insert(NodeId(1));
                conf.learners.remove(&NodeId(1));
            }
            let voters: Vec<NodeId> = conf.voters.iter().copied().collect();
            World {
                leader: voters[leader_at % voters.len()],
                leader_since_ms: 0,
                committed_in_term: true,
                conf_pending: false,
                conf,
                members,
                health,
                now_ms: 100_000,
                cfg,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    /// Every plan passes the pre-checks, and raft-rs accepts its change.
    #[test]
    fn every_planned_change_passes_the_checks(w in arb_world()) {
        let p = w.plan();
        prop_assert_eq!(&p, &w.plan(), "the planner is deterministic");
        if let Err(e) = check(&w, &p) {
            return Err(TestCaseError::fail(format!("{e}: {p:?}")));
        }
        if w.conf_pending {
            prop_assert_eq!(&p, &Plan::Skip(super::SkipReason::Pending));
        } else if w.conf.is_joint() && w.conf.voters.contains(&w.leader) {
            prop_assert_eq!(&p, &Plan::Change(Change::LeaveJoint));
        } else if w.conf.is_joint() {
            let hands_over = matches!(
                p,
                Plan::Change(Change::TransferLeader { .. })
                    | Plan::Skip(super::SkipReason::NoTransferTarget)
            );
            prop_assert!(hands_over, "a demoted leader left the joint config");
        }
        if let Plan::Change(c) = &p {
            match c {
                Change::Joint { demote, .. } => prop_assert!(!demote.contains(&w.leader)),
                Change::Remove(rm) => prop_assert!(!rm.contains(&w.leader)),
                Change::TransferLeader { to } => prop_assert_ne!(*to, w.leader),
                Change::AddLearners(_) | Change::LeaveJoint => {}
            }
            if let Some(cc) = c.to_conf_change() {
                // Panics with raft's reason if raft-rs refuses the change.
                let after = apply_via_raft(&w.conf, w.leader, &cc);
                prop_assert!(after.voters.contains(&w.leader) || after.is_joint());
            }
        }
    }

    /// With everyone healthy, planning and applying (through raft-rs)
    /// reaches `target` voters with at most one voter change (the design
    /// allows three), and then stays idle.
    #[test]
    fn healthy_members_converge_to_the_target(w in arb_healthy_world()) {
        let mut w = w;
        let want = target_voters(w.members.len(), w.cfg.max_voters);
        let mut voter_changes = 0;
        let mut steps = 0;
        loop {
            let p = w.plan();
            if let Err(e) = check(&w, &p) {
                return Err(TestCaseError::fail(format!("{e}: {p:?}")));
            }
            match p {
                Plan::Idle => break,
                Plan::Skip(r) => {
                    return Err(TestCaseError::fail(format!("skipped: {r:?} in {w:?}")))
                }
                Plan::Change(c) => {
                    if matches!(c, Change::Joint { .. }) {
                        voter_changes += 1;
                    }
                    w.apply(&c);
                }
            }
            steps += 1;
            prop_assert!(steps <= 8, "no convergence in 8 steps: {:?}", w.conf);
        }
        prop_assert_eq!(w.conf.voters.len(), want, "voters {:?}", w.conf.voters);
        prop_assert!(voter_changes <= 1, "{} voter changes", voter_changes);
        prop_assert_eq!(w.conf.voters.len() + w.conf.learners.len(), w.members.len());
    }
}

/// A healthy world in which some members are dead (silent for good) or
/// leaving (live until removed). The leader is alive.
fn arb_faulty_world() -> impl Strategy<Value = World> {
    (arb_healthy_world(), prop::collection::vec(0u8..6, 9)).prop_map(|(mut w, faults)| {
        for (m, f) in w.members.iter_mut().zip(faults) {
            if m.id == w.leader {
                continue;
            }
            match f {
                0 => {
                    w.health.insert(m.id, super::testkit::silent_since(0));
                }
                1 => m.leaving = true,
                _ => {}
            }
        }
        w
    })
}

/// Moves time on by more than `dead_after` and `stabilization`, as the
/// driver's ticks would; after a transfer the new leader's health history
/// starts at its election.
fn tick(w: &mut World, transferred: bool) {
    if transferred {
        for h in w.health.values_mut() {
            if h.live {
                h.healthy_since_ms = Some(w.now_ms);
            } else {
                h.silent_since_ms = Some(w.now_ms);
            }
        }
    }
    w.now_ms += 25_000;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    /// With dead and leaving members and time passing, the planner settles
    /// (no oscillation) with every step passing the checks, never joint at
    /// the end, leavers and dead learners gone; when it ends idle every
    /// voter is live and the count is the target.
    #[test]
    fn faults_settle_without_oscillation(w in arb_faulty_world()) {
        let mut w = w;
        let dead = |w: &World, n: NodeId| w.health.get(&n).is_some_and(|h| !h.live);
        let live_voters = w.conf.voters.iter().filter(|v| !dead(&w, **v)).count();
        let had_majority = live_voters > w.conf.voters.len() / 2;
        let mut quiet = 0;
        let mut last = Plan::Idle;
        for _ in 0..40 {
            let p = w.plan();
            if let Err(e) = check(&w, &p) {
                return Err(TestCaseError::fail(format!("{e}: {p:?} in {w:?}")));
            }
            let transferred = matches!(p, Plan::Change(Change::TransferLeader { .. }));
            if let Plan::Change(c) = &p {
                w.apply(c);
                quiet = 0;
            } else {
                quiet += 1;
            }
            last = p;
            if quiet == 2 {
                break;
            }
            tick(&mut w, transferred);
        }
        prop_assert_eq!(quiet, 2, "still changing after 40 steps: {:?}", w.conf);
        prop_assert!(!w.conf.is_joint());
        let leaving = |w: &World, n: NodeId| w.members.iter().any(|m| m.id == n && m.leaving);
        for l in &w.conf.learners {
            prop_assert!(!leaving(&w, *l) && !dead(&w, *l), "learner {:?} left in {:?}", l, last);
        }
        match last {
            Plan::Idle => {
                for v in &w.conf.voters {
                    prop_assert!(!dead(&w, *v) && !leaving(&w, *v), "voter {:?} stays", v);
                }
                let members = w.conf.voters.len() + w.conf.learners.len();
                prop_assert_eq!(w.conf.voters.len(), target_voters(members, w.cfg.max_voters));
            }
            Plan::Skip(super::SkipReason::MinVoters) => {}
            Plan::Skip(super::SkipReason::NoTransferTarget) => {
                prop_assert_eq!(w.conf.voters.len(), 1);
            }
            Plan::Skip(super::SkipReason::NoLiveMajority) => prop_assert!(!had_majority),
            other => return Err(TestCaseError::fail(format!("ended on {other:?}"))),
        }
    }
}
