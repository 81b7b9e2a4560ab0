//! One test per rule of the planner, and the worked cases of the design
//! (7 instances lose 2 voters, 5 with no spare, 3 of 5 dead, a rolling
//! restart under one name, 1 and 2 instances). Every plan is also run past
//! the independent checks in `testkit::check`.

use super::testkit::{
    apply_via_raft, from_conf_state, healthy_since, id, ids, raw_node, set, World,
};
use super::{target_voters, Change, ConfView, Plan, SkipReason};
use raft::eraftpb::ConfChangeTransition;

/// Plans, checks the plan against the pre-checks, and returns it.
fn planned(w: &World) -> Plan {
    let p = w.plan();
    if let Err(e) = super::testkit::check(w, &p) {
        panic!("{e}: {p:?} for {w:#?}");
    }
    p
}

fn joint(promote: &[u64], demote: &[u64]) -> Plan {
    Plan::Change(Change::Joint {
        promote: ids(promote),
        demote: ids(demote),
    })
}

#[test]
fn target_is_the_largest_odd_count_up_to_max_voters() {
    let want = [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 3),
        (4, 3),
        (5, 5),
        (6, 5),
        (9, 5),
        (50, 5),
    ];
    for (eligible, target) in want {
        assert_eq!(target_voters(eligible, 5), target, "eligible {eligible}");
    }
    assert_eq!(target_voters(9, 7), 7);
    assert_eq!(target_voters(9, 0), 1);
    assert_eq!(target_voters(9, 4), 3);
}

#[test]
fn healthy_cluster_at_target_is_idle() {
    let w = World::new(&[1, 2, 3, 4, 5], &[6, 7]);
    assert_eq!(planned(&w), Plan::Idle);
}

#[test]
fn rule1_joint_config_is_left_even_before_committing_in_term() {
    let mut w = World::new(&[1, 2, 3], &[]);
    w.conf.voters_outgoing = set(&[1, 2, 4]);
    w.committed_in_term = false;
    w.silence(2, 60_000);
    w.silence(3, 60_000);
    assert_eq!(planned(&w), Plan::Change(Change::LeaveJoint));
    w.conf_pending = true;
    assert_eq!(planned(&w), Plan::Skip(SkipReason::Pending));
}

#[test]
fn rule1_a_leader_the_joint_config_demotes_hands_over_before_leaving_it() {
    // Elected from the outgoing half: leaving the joint config would make
    // it a learner that still leads (tikv/raft-rs#373).
    let mut w = World::new(&[3, 1, 2, 4], &[]);
    w.conf.voters = set(&[1, 2, 4]);
    w.conf.voters_outgoing = set(&[1, 2, 3]);
    w.conf.learners_next = set(&[3]);
    w.health.insert(id(2), healthy_since(0, 101));
    assert_eq!(
        planned(&w),
        Plan::Change(Change::TransferLeader { to: id(2) })
    );
    w.apply(&Change::TransferLeader { to: id(2) });
    assert_eq!(planned(&w), Plan::Change(Change::LeaveJoint));
}

#[test]
fn nothing_before_the_leader_committed_in_its_term() {
    let mut w = World::new(&[1, 2, 3], &[]);
    w.add_member(4, "n4");
    w.committed_in_term = false;
    assert_eq!(planned(&w), Plan::Skip(SkipReason::NotCommittedInTerm));
}

#[test]
fn nothing_while_a_change_is_pending() {
    let mut w = World::new(&[1, 2, 3], &[]);
    w.add_member(4, "n4");
    w.conf_pending = true;
    assert_eq!(planned(&w), Plan::Skip(SkipReason::Pending));
}

/// Membership soak seed 1571: leadership moved to a demoted voter while a
/// leave-joint was in flight; once it committed the leader was a learner,
/// and raft-rs does not step it down. It hands over instead of planning.
#[test]
fn a_leader_outside_the_voters_hands_leadership_over() {
    let mut w = World::new(&[1, 2, 3], &[]);
    w.leader = id(9);
    w.add_member(4, "n4");
    match planned(&w) {
        Plan::Change(Change::TransferLeader { to }) => assert!([id(1), id(2), id(3)].contains(&to)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rule2_joined_members_become_learners_without_quorum_checks() {
    let mut w = World::new(&[1, 2, 3, 4, 5], &[]);
    w.add_member(7, "n7");
    w.add_member(6, "n6");
    w.add_member(8, "n8").leaving = true;
    w.silence(2, 60_000);
    w.silence(3, 60_000);
    w.silence(4, 60_000); // no live majority: voter changes would skip
    assert_eq!(planned(&w), Plan::Change(Change::AddLearners(ids(&[6, 7]))));
}

#[test]
fn rule2_an_older_incarnation_of_a_name_is_not_added() {
    let mut w = World::new(&[1, 2, 3], &[]);
    w.add_member(4, "web-0");
    w.add_member(5, "web-0");
    assert_eq!(planned(&w), Plan::Change(Change::AddLearners(ids(&[5]))));
}

#[test]
fn rule3_a_leaving_leader_hands_over_to_the_most_caught_up_voter() {
    let mut w = World::new(&[1, 2, 3], &[4]);
    w.member(1).leaving = true;
    w.health.insert(id(2), healthy_since(0, 90));
    w.health.insert(id(3), healthy_since(0, 99));
    assert_eq!(
        planned(&w),
        Plan::Change(Change::TransferLeader { to: id(3) })
    );
    // The new leader replaces the leaver with the learner in one change.
    w.apply(&Change::TransferLeader { to: id(3) });
    w.now_ms += 10_000;
    assert_eq!(planned(&w), joint(&[4], &[1]));
}

#[test]
fn rule3_a_lone_leaving_leader_first_grows_an_heir() {
    let mut w = World::new(&[1], &[2]);
    w.member(1).leaving = true;
    assert_eq!(planned(&w), joint(&[2], &[]));
    // Then: leave the joint config, hand over, the heir demotes and
    // removes the leaver.
    let steps = [
        Change::Joint {
            promote: ids(&[2]),
            demote: vec![],
        },
        Change::LeaveJoint,
        Change::TransferLeader { to: id(2) },
        Change::Joint {
            promote: vec![],
            demote: ids(&[1]),
        },
        Change::LeaveJoint,
        Change::Remove(ids(&[1])),
    ];
    for step in steps {
        assert_eq!(planned(&w), Plan::Change(step.clone()));
        w.apply(&step);
    }
    assert_eq!(planned(&w), Plan::Idle);
    assert_eq!(w.conf.voters, set(&[2]));
    let mut w = World::new(&[1], &[]);
    w.member(1).leaving = true;
    assert_eq!(planned(&w), Plan::Skip(SkipReason::NoTransferTarget));
}

#[test]
fn rule4_a_leaving_voter_is_swapped_for_a_learner() {
    let mut w = World::new(&[1, 2, 3], &[4]);
    w.member(2).leaving = true;
    assert_eq!(planned(&w), joint(&[4], &[2]));
}

#[test]
fn rule4_a_dead_voter_is_swapped_only_after_dead_after() {
    let mut w = World::new(&[1, 2, 3], &[4]);
    w.silence(3, 19_999);
    assert_eq!(planned(&w), Plan::Idle);
    w.silence(3, 20_000);
    assert_eq!(planned(&w), joint(&[4], &[3]));
}

#[test]
fn rule4_a_new_leader_watches_for_dead_after_before_calling_a_voter_dead() {
    let mut w = World::new(&[1, 2, 3], &[4]);
    w.silence(3, 60_000);
    w.leader_since_ms = w.now_ms - 5_000;
    assert_eq!(planned(&w), Plan::Skip(SkipReason::Settling));
    w.leader_since_ms = w.now_ms - 20_000;
    assert_eq!(planned(&w), joint(&[4], &[3]));
}

#[test]
fn rule4_a_learner_is_promoted_only_when_stable() {
    let mut w = World::new(&[1, 2, 3], &[4]);
    w.member(2).leaving = true;
    w.health.insert(id(4), healthy_since(w.now_ms - 4_999, 100));
    assert_eq!(planned(&w), Plan::Skip(SkipReason::Stabilizing));
    w.health.insert(id(4), healthy_since(w.now_ms - 5_000, 100));
    assert_eq!(planned(&w), joint(&[4], &[2]));
}

#[test]
fn rule5_three_voters_grow_to_five_in_one_change() {
    let w = World::new(&[1, 2, 3], &[4, 5]);
    assert_eq!(planned(&w), joint(&[4, 5], &[]));
    // One stable learner and one not: wait, never rest at four.
    let mut w = World::new(&[1, 2, 3], &[4, 5]);
    w.health.insert(id(5), healthy_since(w.now_ms - 1_000, 100));
    assert_eq!(planned(&w), Plan::Skip(SkipReason::Stabilizing));
}

#[test]
fn rule5_voter_choice_prefers_durable_then_new_zone_then_longest_stable() {
    let mut w = World::new(&[1, 2, 3], &[4, 5, 6, 7]);
    for (n, zone) in [
        (1, "a"),
        (2, "b"),
        (3, "a"),
        (4, "a"),
        (5, "c"),
        (6, "a"),
        (7, "a"),
    ] {
        w.member(n).zone = Some(zone.to_owned());
    }
    w.member(7).durable = false;
    w.health.insert(id(6), healthy_since(10, 100));
    w.health.insert(id(4), healthy_since(20, 100));
    // 5 brings zone c; then 6 is healthy longer than 4; 7 is in memory.
    assert_eq!(planned(&w), joint(&[5, 6], &[]));
}

#[test]
fn rule4_a_dead_voter_is_replaced_from_the_zone_the_voters_lack() {
    // Voters 1, 2 in zone a and 3 in b; 2 dies. Learner 4 (zone a) is
    // stable longer and has the lower id, but 5 brings zone c.
    let mut w = World::new(&[1, 2, 3], &[4, 5]);
    for (n, zone) in [(1, "a"), (2, "a"), (3, "b"), (4, "a"), (5, "c")] {
        w.member(n).zone = Some(zone.to_owned());
    }
    w.health.insert(id(5), healthy_since(50_000, 100));
    w.silence(2, 60_000);
    assert_eq!(planned(&w), joint(&[5], &[2]));
    // Without zones, the longest stable wins.
    for n in 1..=5 {
        w.member(n).zone = None;
    }
    assert_eq!(planned(&w), joint(&[4], &[2]));
}

#[test]
fn rule6_voters_over_the_target_shrink_in_one_change_never_the_leader() {
    let mut w = World::new(&[1, 2, 3, 4, 5], &[]);
    w.cfg.max_voters = 3;
    w.member(2).durable = false;
    w.member(4).durable = false;
    assert_eq!(planned(&w), joint(&[], &[2, 4]));
    w.leader = id(2);
    assert_eq!(planned(&w), joint(&[], &[4, 5]));
}

#[test]
fn rule6_silence_never_shrinks_below_min_voters() {
    let mut w = World::new(&[1, 2, 3], &[]);
    w.silence(3, 60_000);
    assert_eq!(planned(&w), Plan::Skip(SkipReason::MinVoters));
}

#[test]
fn rule6_a_voluntary_leave_may_go_below_min_voters() {
    let mut w = World::new(&[1, 2, 3], &[]);
    w.member(3).leaving = true;
    // Two voters would tolerate nothing: one voter and one learner.
    assert_eq!(planned(&w), joint(&[], &[2, 3]));
}

#[test]
fn rule6_the_floor_never_keeps_dead_voters_the_live_ones_cannot_outvote() {
    // Two leavers and two dead of five (found by the fault proptest):
    // keeping the dead for min_voters would make {3, 4, 5} with one live
    // voter, and the group would be lost once the leavers stop. Leave with
    // one voter instead; the voluntary leave may go below min_voters.
    let mut w = World::new(&[5, 1, 2, 3, 4], &[]);
    w.member(1).leaving = true;
    w.member(2).leaving = true;
    w.silence(3, 60_000);
    w.silence(4, 60_000);
    assert_eq!(planned(&w), joint(&[], &[1, 2, 3, 4]));
}

#[test]
fn rule7_demoted_and_dead_learners_are_removed() {
    let mut w = World::new(&[1, 2, 3], &[4, 5, 6]);
    w.member(4).leaving = true;
    w.silence(5, 20_000);
    w.silence(6, 10_000);
    assert_eq!(planned(&w), Plan::Change(Change::Remove(ids(&[4, 5]))));
}

#[test]
fn rule7_removal_goes_ahead_while_a_promotion_waits() {
    let mut w = World::new(&[1, 2, 3], &[4, 5, 6]);
    w.health.insert(id(5), healthy_since(w.now_ms - 1_000, 100));
    w.silence(6, 30_000);
    w.health.insert(id(4), healthy_since(w.now_ms - 1_000, 100));
    assert_eq!(planned(&w), Plan::Change(Change::Remove(ids(&[6]))));
}

#[test]
fn seven_instances_two_voters_killed_are_swapped_in_one_joint_change() {
    let mut w = World::new(&[1, 2, 3, 4, 5], &[6, 7]);
    w.silence(4, 20_000);
    w.silence(5, 20_000);
    assert_eq!(planned(&w), joint(&[6, 7], &[4, 5]));
    w.apply(&Change::Joint {
        promote: ids(&[6, 7]),
        demote: ids(&[4, 5]),
    });
    assert_eq!(planned(&w), Plan::Change(Change::LeaveJoint));
    w.apply(&Change::LeaveJoint);
    assert_eq!(w.conf.voters, set(&[1, 2, 3, 6, 7]));
    assert_eq!(planned(&w), Plan::Change(Change::Remove(ids(&[4, 5]))));
    // Removing two learners at once is an explicit joint change whose
    // halves have the same voters; it is left like any other.
    w.apply(&Change::Remove(ids(&[4, 5])));
    assert_eq!(planned(&w), Plan::Change(Change::LeaveJoint));
    w.apply(&Change::LeaveJoint);
    assert_eq!(w.conf.learners, set(&[]));
    assert_eq!(planned(&w), Plan::Idle);
}

#[test]
fn five_instances_no_spare_shrink_to_three_after_dead_after() {
    let mut w = World::new(&[1, 2, 3, 4, 5], &[]);
    w.silence(4, 10_000);
    w.silence(5, 10_000);
    assert_eq!(planned(&w), Plan::Idle);
    w.now_ms += 10_000;
    assert_eq!(planned(&w), joint(&[], &[4, 5]));
}

#[test]
fn leavers_wait_when_the_staying_voters_lack_a_live_majority() {
    // Two leavers and two voters silent (not yet dead): the old config has
    // a live majority, the new one {1, 4, 5} would not.
    let mut w = World::new(&[1, 2, 3, 4, 5], &[]);
    w.member(2).leaving = true;
    w.member(3).leaving = true;
    w.silence(4, 5_000);
    w.silence(5, 5_000);
    assert_eq!(planned(&w), Plan::Skip(SkipReason::NoLiveMajority));
}

#[test]
fn three_of_five_voters_dead_changes_nothing() {
    let mut w = World::new(&[1, 2, 3, 4, 5], &[6, 7]);
    for n in [3, 4, 5] {
        w.silence(n, 60_000);
    }
    assert_eq!(planned(&w), Plan::Skip(SkipReason::NoLiveMajority));
}

#[test]
fn rolling_restart_same_name_supersedes_without_waiting_for_dead_after() {
    let mut w = World::new(&[1, 2, 3], &[]);
    w.silence(3, 1_000);
    w.add_member(4, "n3");
    // The blank restart joins: a learner first.
    assert_eq!(planned(&w), Plan::Change(Change::AddLearners(ids(&[4]))));
    w.apply(&Change::AddLearners(ids(&[4])));
    w.health.insert(id(4), healthy_since(w.now_ms, 100));
    assert_eq!(planned(&w), Plan::Idle);
    w.now_ms += 5_000;
    assert_eq!(planned(&w), joint(&[4], &[3]));
    // With a shared certificate names prove nothing: wait for dead_after.
    w.cfg.same_name_supersedes = false;
    assert_eq!(planned(&w), Plan::Idle);
}

#[test]
fn one_instance_is_one_voter_and_two_are_a_voter_and_a_learner() {
    let w = World::new(&[1], &[]);
    assert_eq!(planned(&w), Plan::Idle);
    let w = World::new(&[1], &[2]);
    assert_eq!(planned(&w), Plan::Idle);
    let w = World::new(&[1], &[2, 3]);
    assert_eq!(planned(&w), joint(&[2, 3], &[]));
}

#[test]
fn joint_change_is_explicit_and_raft_enters_then_leaves_it() {
    let conf = ConfView {
        voters: set(&[1, 2, 3]),
        learners: set(&[4]),
        ..ConfView::default()
    };
    let change = Change::Joint {
        promote: ids(&[4]),
        demote: ids(&[3]),
    };
    let cc = change
        .to_conf_change()
        .expect("a joint change is a conf change");
    assert_eq!(cc.get_transition(), ConfChangeTransition::Explicit);
    let mut raw = raw_node(&conf, id(1));
    let cs = raw
        .apply_conf_change(&cc)
        .expect("raft accepts the joint change");
    assert!(!cs.auto_leave, "never rely on auto-leave (etcd#12136)");
    let view = from_conf_state(&cs);
    assert_eq!(view.voters, set(&[1, 2, 4]));
    assert_eq!(view.voters_outgoing, set(&[1, 2, 3]));
    assert_eq!(view.learners_next, set(&[3]));
    assert!(view.learners.is_empty());
    let leave = Change::LeaveJoint
        .to_conf_change()
        .expect("leave is a conf change");
    let view = from_conf_state(&raw.apply_conf_change(&leave).expect("raft leaves"));
    assert_eq!(view.voters, set(&[1, 2, 4]));
    assert!(!view.is_joint());
    assert_eq!(view.learners, set(&[3]));
    let rm = Change::Remove(ids(&[3]))
        .to_conf_change()
        .expect("a remove");
    let view = from_conf_state(&raw.apply_conf_change(&rm).expect("raft removes it"));
    assert!(!view.is_joint(), "removing one learner is a simple change");
    assert!(view.learners.is_empty());
    assert_eq!(view.voters, set(&[1, 2, 4]));
}

#[test]
fn adding_several_learners_never_sets_auto_leave() {
    let conf = ConfView {
        voters: set(&[1, 2, 3]),
        ..ConfView::default()
    };
    let one = Change::AddLearners(ids(&[4]))
        .to_conf_change()
        .expect("add");
    let after = apply_via_raft(&conf, id(1), &one);
    assert!(!after.is_joint(), "one learner is a simple change");
    assert_eq!(after.learners, set(&[4]));
    let two = Change::AddLearners(ids(&[4, 5]))
        .to_conf_change()
        .expect("add");
    assert_eq!(two.get_transition(), ConfChangeTransition::Explicit);
    let mut raw = raw_node(&conf, id(1));
    let cs = raw.apply_conf_change(&two).expect("raft adds both");
    assert!(!cs.auto_leave);
    let view = from_conf_state(&cs);
    assert_eq!(view.learners, set(&[4, 5]));
    assert_eq!(
        view.voters, view.voters_outgoing,
        "a joint config, equal halves"
    );
    assert_eq!(Change::TransferLeader { to: id(2) }.to_conf_change(), None);
    assert_eq!(Change::Remove(Vec::new()).to_conf_change(), None);
}
