//! Issue 9 across real processes and a real network fault: five node
//! processes in network namespaces (as in `t40_netns`), three voters
//! (`--max-voters 3`), `dead_after` 3 s, `stabilization` 1 s, TTL 1.5 s,
//! a client contending for one lock on every node. A voter cut off by
//! nftables past `dead_after` must be replaced by a learner (the voters
//! three and live again) and then removed, while the majority side keeps
//! granting; healed, it is told `Removed` and must come back live as a
//! learner under a new id, never counted under its old one (P4). Then
//! the same with the leader. Each is cut off holding the lock, stalled in
//! its critical section, and writes late: the resource must refuse it.
//! The merged history must pass the checker.
//!
//! Needs root, `ip netns` and `nft`; otherwise prints `SKIPPED: <reason>`
//! to the raw stderr and returns.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::members::{
    leader_now, members_until, membership_args, spawn_client, watch_grants, Task,
};
use crate::procs::Spec;
use crate::t40_netns::{ip_of, missing_capability, remove_stale, start_in, Netns};
use crate::workload::{judge, Shared};

const TTL: Duration = Duration::from_millis(1500);
const NODES: usize = 5;
const PORT: u16 = 7100;
const LOCK: &str = "x";
const DEAD_AFTER: Duration = Duration::from_millis(3000);
/// How long a node is cut off: well past `dead_after`.
const FAULT: Duration = Duration::from_secs(8);
/// The voters must be whole again within `dead_after` and this. Measured
/// at 4.2 to 4.4 s after the cut on a quiet machine; 5 s of slack failed
/// once in CI with two other builds sharing the two cores, so the bound
/// proves the replacement happens, not its speed (the README's timings
/// come from the printed figures).
const REPLACE_SLACK: Duration = Duration::from_secs(12);
/// A healed node must be seen live again within this.
const RETURN_BOUND: Duration = Duration::from_secs(10);
/// The longest the majority side may go without a grant while a node is
/// cut off (a lost holder's session expires after a TTL; a lost leader
/// also costs an election).
const GRANT_GAP: Duration = Duration::from_secs(5);

fn skip(reason: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: t45_issue_9_an_isolated_voter_is_replaced_and_returns_as_a_new_learner: {reason}"
    );
}

/// Cuts `victim` off for [`FAULT`], checks it is replaced and the majority
/// keeps granting, heals, checks it returns as a live learner under a new
/// id (its old one was removed while it was cut off).
async fn isolate_and_return(net: &Netns, shared: &Shared, victim: usize, what: &str) {
    let others: Vec<usize> = (0..NODES).filter(|&i| i != victim).collect();
    // Cut it off while it holds the lock, stalled in its critical section
    // (a paused application): the majority must grant again once its
    // session expires, and its late write must be refused.
    shared.views.lock()[victim].stall = true;
    let start = Instant::now();
    while !shared.views.lock()[victim].stalled {
        assert!(
            start.elapsed() < RETURN_BOUND,
            "node {victim} never got the lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let old_id = members_until(shared, &others, RETURN_BOUND, "the victim's id", |m| {
        m.of(victim).is_some()
    })
    .await
    .0
    .of(victim)
    .map(|n| n.id)
    .expect("the victim is a member");
    net.isolate(victim);
    let cut = Instant::now();
    let watch = watch_grants(shared, cut + FAULT);
    let replaced = members_until(shared, &others, DEAD_AFTER + REPLACE_SLACK, what, |m| {
        let v = m.voters();
        v.len() == 3 && !v.contains(&victim) && m.all_voters_live()
    });
    let ((gap, granted), (after, took)) = tokio::join!(watch, replaced);
    println!(
        "t45: {what} (node {victim}): replaced after {took:?} (voters {:?}); {granted} grants in {:?}, longest gap {gap:?}",
        after.voters(),
        cut.elapsed()
    );
    shared.views.lock()[victim].stall = false;
    assert!(granted > 0, "{what}: no grant on the majority side");
    assert!(
        gap < GRANT_GAP,
        "{what}: the majority side went {gap:?} without a grant"
    );
    net.heal();
    let healed = Instant::now();
    // The healed node itself missed the change while cut off; `members` is
    // linearizable and the change committed before the heal, so no answer
    // it gives may show it a voter still (errors are fine meanwhile).
    let (own, took) = members_until(shared, &[victim], RETURN_BOUND, "healed node's view", |m| {
        assert!(
            !m.of(victim).is_some_and(|n| n.voter),
            "{what}: stale read: the healed node {victim} reports itself a voter after its replacement committed: {m}"
        );
        m.of(victim).is_some_and(|n| !n.voter && n.live && n.id != old_id)
    })
    .await;
    println!(
        "t45: node {victim} itself answers members as a live learner under a new id after {took:?} (voters {:?})",
        own.voters()
    );
    let (back, _) = members_until(shared, &others, RETURN_BOUND, "healed node live", |m| {
        m.of(victim)
            .is_some_and(|n| !n.voter && n.live && n.id != old_id)
            && m.by_id(old_id).is_none()
            && m.all_voters_live()
    })
    .await;
    println!(
        "t45: the majority sees node {victim} live as a learner {:?} after the heal (voters {:?})",
        healed.elapsed(),
        back.voters()
    );
    assert_eq!(
        own.voters(),
        back.voters(),
        "the healed node and the majority disagree"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t45_issue_9_an_isolated_voter_is_replaced_and_returns_as_a_new_learner() {
    // Its own namespace names: t40 may run at the same time in this process.
    let prefix = format!("plk{}m", std::process::id());
    if let Some(reason) = missing_capability(&prefix) {
        skip(&reason);
        return;
    }
    remove_stale();
    let net = Netns::create(&prefix, NODES)
        .unwrap_or_else(|e| panic!("setting up namespaces failed: {e}"));
    let started = Instant::now();

    let mut spec = Spec::with_hosts(
        (0..NODES).map(ip_of).collect(),
        vec![PORT; NODES],
        TTL,
        true,
    );
    spec.extra_args = membership_args(DEAD_AFTER, Duration::from_millis(1000), Some(3));
    let procs = start_in(&net, &mut spec).await;

    let shared = Shared::new(NODES, TTL);
    let tasks: Vec<Task> = procs
        .into_iter()
        .enumerate()
        .map(|(i, p)| spawn_client(&shared, i, p, LOCK, TTL))
        .collect();
    let all: Vec<usize> = (0..NODES).collect();
    let (m, _) = members_until(&shared, &all, RETURN_BOUND, "five live members", |m| {
        m.0.len() == NODES && m.voters().len() == 3 && m.0.iter().all(|n| n.live)
    })
    .await;
    println!("t45: started; voters {:?}", m.voters());
    // Learners become eligible after `stabilization`.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let leader = leader_now(&shared, RETURN_BOUND).await;
    let (m, _) = members_until(&shared, &all, RETURN_BOUND, "members", |_| true).await;
    let victim = *m
        .voters()
        .iter()
        .find(|&&i| i != leader)
        .expect("a voter other than the leader");
    isolate_and_return(&net, &shared, victim, "a follower voter cut off").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let leader = leader_now(&shared, RETURN_BOUND).await;
    isolate_and_return(&net, &shared, leader, "the leader cut off").await;
    let new = leader_now(&shared, RETURN_BOUND).await;
    assert_ne!(new, leader, "the cut-off leader leads again");

    shared.stop.store(true, Ordering::Relaxed);
    let mut parts = Vec::new();
    for t in tasks {
        let (mut c, gone) = tokio::time::timeout(Duration::from_secs(40), t)
            .await
            .expect("clients stop")
            .expect("client task");
        assert_eq!(gone, None, "node {}'s client failed: {gone:?}", c.node);
        parts.push(std::mem::take(&mut c.history));
        c.proc.kill9().await;
    }
    let report = judge("t45 membership", parts, TTL, 50);
    assert!(
        report.stats.stale_writes_refused >= 2,
        "both cut-off holders wrote with a stale token: {:?}",
        report.stats
    );
    println!("t45: done in {:?}", started.elapsed());
    drop(net);
}
