//! Issue 9, P3: dead voters, across real processes (durable nodes on
//! 127.0.0.1, a client contending for one lock on every node, the merged
//! history judged by the checker).
//!
//! - Seven instances (five voters, two learners); SIGKILL two voters, the
//!   leader among them. Three of five voters live are a majority of both the
//!   old and the new voter set, so the locks keep flowing and, once the new
//!   leader has watched them silent for `dead_after`, one joint change swaps
//!   both for the two learners, and then removes them (dead learners).
//!   Restarted from their old disks, both are told `Removed` by every
//!   peer: one (the default `rejoin_when_removed`) wipes its state and
//!   joins again under a new id by itself, in the same process; the other
//!   (`--rejoin-when-removed false`) exits with status 3, like etcd's
//!   removed member, and its next start joins blank under a new id. Their
//!   old ids never come back.
//! - Five instances and no spare; SIGKILL two voters (the leader among
//!   them): after `dead_after` the voters shrink to the three live ones in
//!   one change (fault tolerance back from none to one) and removes the
//!   two; restarted from their disks, they are told `Removed`, rejoin
//!   under new ids, and are promoted once stable: five voters.
//! - Five instances; SIGKILL three voters at once. No majority is left, so
//!   nothing can commit: no grant, calls fail with `NoQuorum`, and no
//!   membership change either. One voter returning from its disk restores
//!   the quorum with the same five voters.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::members::{
    grants_after, leader_now, members_until, members_watch, membership_args, GrantLog, Loaded,
    Members,
};
use crate::procs::Spec;

const TTL: Duration = Duration::from_millis(1500);
const DEAD_AFTER: Duration = Duration::from_millis(3000);
const STABILIZATION: Duration = Duration::from_millis(1000);
/// The dead voters must be replaced within `dead_after` and this (issue 9).
const REPLACE_SLACK: Duration = Duration::from_secs(3);
/// Locks must flow again within this of killing the leader and a voter:
/// an election, and the killed holder's session expiry (one TTL).
const GRANT_GAP: Duration = Duration::from_secs(4);
const BOUND: Duration = Duration::from_secs(20);

fn spec(n: usize) -> Spec {
    let mut spec = Spec::new(n, TTL, true);
    spec.extra_args = membership_args(DEAD_AFTER, STABILIZATION, None);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t52_issue_9_two_dead_voters_are_replaced_in_one_joint_change_and_their_disks_rejoin_as_new_members(
) {
    let started = Instant::now();
    let mut c = Loaded::start(spec(7), 7).await;
    let grants = GrantLog::start(&c.shared);
    let (m, _) = members_until(&c.shared, &c.up(), BOUND, "5 voters + 2 learners", |m| {
        m.0.len() == 7 && m.voter_ids().len() == 5 && m.0.iter().all(|n| n.live)
    })
    .await;
    // The learners become eligible once stable.
    tokio::time::sleep(STABILIZATION * 2).await;
    let leader = leader_now(&c.shared, BOUND).await;
    let other = *m
        .voters()
        .iter()
        .find(|&&v| v != leader)
        .expect("another voter");
    let victims = [leader, other];
    let ids: Vec<u64> = victims
        .iter()
        .map(|&v| m.of(v).expect("member").id)
        .collect();
    let learners: Vec<usize> = m.0.iter().filter(|n| !n.voter).map(|n| n.node).collect();
    println!("t52: started: {m}; killing the leader {leader} and voter {other}");

    let killed = Instant::now();
    for v in victims {
        c.kill(v).await;
    }
    let survivors = c.up();
    let resumed = grants_after(&c.shared, 1, GRANT_GAP, "after killing two voters").await;
    // Every answer seen while waiting: the two are swapped in one joint
    // change, so no settled configuration ever has only one of them out.
    let mut half = None;
    let (after, _) = members_watch(
        &c.shared,
        &survivors,
        (DEAD_AFTER + REPLACE_SLACK).saturating_sub(killed.elapsed()),
        "both dead voters replaced by the learners (bound: dead_after + 3 s from the kill)",
        |m: &Members| {
            let out = ids.iter().filter(|id| !m.voter_ids().contains(id)).count();
            if m.voter_ids().len() == 5 && out == 1 {
                half.get_or_insert_with(|| m.to_string());
            }
        },
        |m: &Members| {
            m.live_voters_are(5)
                && ids.iter().all(|id| !m.voter_ids().contains(id))
                && learners.iter().all(|&l| m.of(l).is_some_and(|n| n.voter))
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took < DEAD_AFTER + REPLACE_SLACK,
        "replaced only {took:?} after the kill"
    );
    assert_eq!(
        half, None,
        "one dead voter was replaced before the other (two changes, not one joint change)"
    );
    // Then, dead learners, they are removed: their ids never count again.
    let (gone, took_gone) = members_until(
        &c.shared,
        &survivors,
        BOUND,
        "both dead members removed",
        |m| ids.iter().all(|id| m.by_id(*id).is_none()) && m.live_voters_are(5),
    )
    .await;
    println!("t52: both dead members removed {took_gone:?} later: {gone}");
    let gap = grants.longest_gap(killed, Instant::now());
    println!(
        "t52: grants resumed {resumed:?} after the kill, longest gap {gap:?}; both replaced after {took:?}: {after}"
    );
    assert!(gap < GRANT_GAP, "no grant for {gap:?}");

    // Back from their old disks. The first rejoins by itself under a new
    // id (its `ready` waits for that); the second, told not to, exits 3.
    let back_at = Instant::now();
    let ready = c.start_node(victims[0], BOUND).await;
    println!(
        "t52: node {} restarted from its disk, rejoined and ready after {ready:?}",
        victims[0]
    );
    let code = c
        .run_to_exit(victims[1], &["--rejoin-when-removed", "false"], BOUND)
        .await;
    assert_eq!(
        code,
        Some(3),
        "a removed node without rejoin exits with status 3"
    );
    println!(
        "t52: node {} restarted from its disk without rejoin: exit status 3 after {:?}",
        victims[1],
        back_at.elapsed()
    );
    // Its directory was marked: the next start is blank and joins.
    c.start_node(victims[1], BOUND).await;
    let (back, took) = members_until(&c.shared, &c.up(), BOUND, "both back under new ids", |m| {
        victims
            .iter()
            .all(|&v| m.of(v).is_some_and(|n| n.live && !ids.contains(&n.id)))
            && ids.iter().all(|id| m.by_id(*id).is_none())
            && m.live_voters_are(5)
    })
    .await;
    println!("t52: both back as new members after {took:?}: {back}");
    grants_after(&c.shared, 5, Duration::from_secs(5), "after the restarts").await;
    assert!(back_at.elapsed() < BOUND);
    c.finish("t52 two dead voters", 50).await;
    println!("t52: done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t53_issue_9_three_dead_voters_change_nothing_until_one_returns() {
    let started = Instant::now();
    let mut c = Loaded::start(spec(5), 5).await;
    let (m, _) = members_until(&c.shared, &c.up(), BOUND, "five live voters", |m| {
        m.live_voters_are(5)
    })
    .await;
    let voters = m.voter_ids();
    tokio::time::sleep(STABILIZATION * 2).await;
    let leader = leader_now(&c.shared, BOUND).await;
    let mut victims = vec![leader];
    victims.extend((0..5).filter(|&i| i != leader).take(2));
    println!("t53: started: {m}; killing {victims:?} (the leader {leader} first)");
    let killed = Instant::now();
    for &v in &victims {
        c.kill(v).await;
    }
    let survivors = c.up();
    // Well past dead_after: the planner would have acted by now if it
    // could. Nothing commits meanwhile: no grant (after a moment for
    // answers already on their way), members() fails with NoQuorum.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_quiet = c.shared.grants.load(Ordering::Relaxed);
    let mut answers = Vec::new();
    while killed.elapsed() < DEAD_AFTER * 2 {
        let asked = Instant::now();
        let (_, line) = c
            .shared
            .members(&survivors, Duration::from_secs(10))
            .await
            .expect("a survivor answers members");
        let took = asked.elapsed();
        assert!(
            line.starts_with("error ") && line.contains("no quorum"),
            "members answered without a quorum: {line:?}"
        );
        answers.push(took);
    }
    let granted = c.shared.grants.load(Ordering::Relaxed) - at_quiet;
    let slowest = answers.iter().max().copied().unwrap_or_default();
    println!(
        "t53: {} members calls without a quorum, each answered NoQuorum, slowest after {slowest:?} (it may wait for the client's lock call first); {granted} grants",
        answers.len()
    );
    assert_eq!(granted, 0, "locks granted without a majority of voters");
    assert!(
        slowest < TTL * 3,
        "a call waited {slowest:?} for its NoQuorum"
    );

    // One voter returns from its disk: the same five voters, three live.
    let back = victims[1];
    let returned = Instant::now();
    let ready = c.start_node(back, BOUND).await;
    let resumed = grants_after(&c.shared, 1, BOUND, "after a voter returned").await;
    let (m, _) = members_until(&c.shared, &c.up(), BOUND, "the same voters", |m| {
        m.voter_ids() == voters && m.0.iter().filter(|n| n.live).count() == 3
    })
    .await;
    println!(
        "t53: node {back} back from its disk: ready after {ready:?}, first grant {resumed:?} after that, {:?} after its start: {m}",
        returned.elapsed()
    );
    for &v in &victims[2..] {
        c.start_node(v, BOUND).await;
    }
    c.start_node(victims[0], BOUND).await;
    let (m, _) = members_until(&c.shared, &c.up(), BOUND, "all five back", |m| {
        m.live_voters_are(5)
    })
    .await;
    let ids: BTreeSet<u64> = m.voter_ids();
    assert_eq!(ids, voters, "a membership change committed: {m}");
    c.finish("t53 three dead voters", 20).await;
    println!("t53: done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t54_issue_9_two_dead_voters_of_five_without_spares_shrink_the_voters_to_three() {
    let started = Instant::now();
    let mut c = Loaded::start(spec(5), 5).await;
    let (m, _) = members_until(&c.shared, &c.up(), BOUND, "five live voters", |m| {
        m.live_voters_are(5)
    })
    .await;
    let leader = leader_now(&c.shared, BOUND).await;
    let other = (0..5).find(|&i| i != leader).expect("another voter");
    let victims = [leader, other];
    let ids: Vec<u64> = victims
        .iter()
        .map(|&v| m.of(v).expect("member").id)
        .collect();
    let live_ids: BTreeSet<u64> = m
        .voter_ids()
        .into_iter()
        .filter(|id| !ids.contains(id))
        .collect();
    let killed = Instant::now();
    for v in victims {
        c.kill(v).await;
    }
    grants_after(&c.shared, 1, GRANT_GAP, "after killing two of five voters").await;
    let (after, _) = members_until(
        &c.shared,
        &c.up(),
        (DEAD_AFTER + REPLACE_SLACK).saturating_sub(killed.elapsed()),
        "the voters shrunk to the three live",
        |m| m.live_voters_are(3) && m.voter_ids() == live_ids,
    )
    .await;
    let took = killed.elapsed();
    println!(
        "t54: killed the leader {leader} and voter {other}; voters shrunk to three after {took:?}: {after}"
    );
    assert!(
        took < DEAD_AFTER + REPLACE_SLACK,
        "shrunk only {took:?} after the kill"
    );
    // The two are removed (dead learners); back from their disks, they
    // are told `Removed`, rejoin under new ids, and are promoted.
    members_until(
        &c.shared,
        &c.up(),
        BOUND,
        "the two dead members removed",
        |m| ids.iter().all(|id| m.by_id(*id).is_none()),
    )
    .await;
    let back_at = Instant::now();
    for v in victims {
        c.start_node(v, BOUND).await;
    }
    let (back, _) = members_until(&c.shared, &c.up(), BOUND, "five voters again", |m| {
        m.live_voters_are(5)
            && victims
                .iter()
                .all(|&v| m.of(v).is_some_and(|n| n.voter && !ids.contains(&n.id)))
    })
    .await;
    println!(
        "t54: restarted from their disks, rejoined under new ids, five voters again after {:?}: {back}",
        back_at.elapsed()
    );
    c.finish("t54 shrink to three", 50).await;
    println!("t54: done in {:?}", started.elapsed());
}
