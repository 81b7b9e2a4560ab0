//! Issue 9, P1: a rolling blank-disk restart. Five durable node processes
//! on 127.0.0.1, a client contending for one lock on every node. Each
//! node in turn is killed with SIGKILL and started again with an EMPTY data
//! directory under the same name (the same certificate): it must join
//! under a new id and supersede its old incarnation, so that the cluster is
//! back to five live voters, the new id among them and the old one not,
//! within [`STEP_BOUND`] of the kill. The merged history must pass the
//! checker.
//!
//! The same name lets the newcomer replace the dead voter as soon as it is
//! stable (`stabilization`, 1 s here), without waiting for `dead_after`.
//!
//! The same with in-memory nodes, whose every restart is blank: before
//! issue 9 a rolling restart of an in-memory deployment ended the cluster.

use std::time::{Duration, Instant};

use crate::members::{
    grants_after, median, members_until, membership_args, GrantLog, Loaded, Members,
};
use crate::procs::Spec;

const TTL: Duration = Duration::from_millis(1500);
const NODES: usize = 5;
const DEAD_AFTER: Duration = Duration::from_millis(3000);
const STABILIZATION: Duration = Duration::from_millis(1000);
/// From the kill to five live voters again (issue 9: 12 s with the same name).
const STEP_BOUND: Duration = Duration::from_secs(12);
/// The same with a new name (issue 9: 25 s).
const NEW_NAME_STEP_BOUND: Duration = Duration::from_secs(25);
/// The longest the clients may go without a grant during a step: a killed
/// holder's lock waits out its session TTL, a killed leader adds an
/// election, and a blank node's join and promotion happen meanwhile.
const GRANT_GAP: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_issue_9_a_rolling_blank_disk_restart_keeps_five_live_voters() {
    rolling("t50", true, false, false).await;
}

/// P1's graceful variant: each node in turn gets SIGTERM (what an
/// orchestrator sends), so `shutdown()` releases its locks and leaves the
/// membership; it is started again on the same directory, which its leave
/// marked, so the start is blank and joins under a new id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_issue_9_a_rolling_restart_with_graceful_leaves_keeps_five_live_voters() {
    rolling("t50-term", true, false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t51_issue_9_a_rolling_restart_of_in_memory_nodes_keeps_five_live_voters() {
    rolling("t51", false, false, false).await;
}

/// Every node holds the one certificate all share and is named with
/// `--name`; each restart comes back blank under a NEW name. Names are not
/// authenticated then, so the same-name fast path is off and the dead
/// voter is replaced after `dead_after` (issue 9: within 25 s per step).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t59_issue_9_a_rolling_restart_under_new_names_with_a_shared_certificate_keeps_five_live_voters(
) {
    rolling("t59", true, true, false).await;
}

/// Restarts every node in turn, blank (durable: its directory emptied, or
/// with `graceful` marked by its leave), under its own name, or
/// (`new_names`, a shared certificate) a new one: slot `i`'s newcomer is
/// named `proc-{i + NODES}`. `graceful`: SIGTERM instead of SIGKILL.
async fn rolling(t: &str, durable: bool, new_names: bool, graceful: bool) {
    let started = Instant::now();
    let mut spec = Spec::new(NODES, TTL, durable);
    spec.extra_args = membership_args(DEAD_AFTER, STABILIZATION, None);
    if new_names {
        spec.shared_names = (0..NODES).map(|i| Some(format!("proc-{i}"))).collect();
    }
    let step_bound = if new_names {
        NEW_NAME_STEP_BOUND
    } else {
        STEP_BOUND
    };
    let mut c = Loaded::start(spec, NODES).await;
    let grants = GrantLog::start(&c.shared);
    let (mut m, _) = members_until(&c.shared, &c.up(), STEP_BOUND, "five live voters", |m| {
        m.live_voters_are(NODES)
    })
    .await;
    println!("{t}: started: {m}");
    let mut steps = Vec::new();
    for i in 0..NODES {
        let old = m.of(i).expect("every node is a member").id;
        let leader = c.shared.leader(Duration::from_millis(500));
        let killed = Instant::now();
        if graceful {
            c.terminate(i).await;
        } else {
            c.kill(i).await;
        }
        if durable && !graceful {
            std::fs::remove_dir_all(c.spec.data_dir(i)).expect("empty the data directory");
        }
        // The newcomer's name: its slot's, or a new one.
        let name = if new_names { i + NODES } else { i };
        if new_names {
            c.spec.shared_names[i] = Some(format!("proc-{name}"));
        }
        let ready = c.start_node(i, step_bound).await;
        let bound = step_bound.saturating_sub(killed.elapsed());
        let what = format!("step {i}: five live voters with proc-{name}'s new id");
        (m, _) = members_until(&c.shared, &c.up(), bound, &what, |m: &Members| {
            m.live_voters_are(NODES)
                && !m.voter_ids().contains(&old)
                && m.of(name).is_some_and(|n| n.voter && n.id > old)
        })
        .await;
        let step = killed.elapsed();
        let gap = grants.longest_gap(killed, Instant::now());
        println!(
            "{t}: step {i} (old id {old}{}): ready after {ready:?}, five live voters after {step:?}, longest grant gap {gap:?}: {m}",
            if leader == Some(i) { ", the leader" } else { "" }
        );
        assert!(
            gap < GRANT_GAP,
            "step {i}: no grant for {gap:?} (leader killed: {})",
            leader == Some(i)
        );
        steps.push(step);
        grants_after(&c.shared, 3, Duration::from_secs(5), &what).await;
    }
    // Superseded, left and dead incarnations are removed, not kept as
    // learners: each node is one member again (under new names the old
    // ones go once dead for `dead_after`).
    let want = NODES;
    let (m, _) = members_until(
        &c.shared,
        &c.up(),
        DEAD_AFTER + Duration::from_secs(10),
        "old ids removed",
        |m| m.0.len() == want,
    )
    .await;
    println!(
        "{t}: steps took {steps:?} (median {:?}); end: {m}",
        median(&steps)
    );
    c.finish(&format!("{t} rolling blank restart"), 50).await;
    println!("{t}: done in {:?}", started.elapsed());
}
