//! Issue 9, P6: a restored copy of a data directory, and a durable restart
//! while another peer is dead for good, across real processes (three
//! durable founders on 127.0.0.1, a client contending for one lock on every
//! node, the merged history judged by the checker).
//!
//! A founder's start says hello with its directory's boot counter, bumped
//! at every start; its peers remember the last start they accepted and
//! refuse one whose boot does not rise (`core/src/raft/bootstrap/hello.rs`).
//! So a copy is refused once the real directory has been started after
//! the copy was taken (t60). A copy of a running node restored before its
//! next start has the newest boot; the hello also says where its log ends,
//! and the leader refuses one that ends below what the node acknowledged
//! to it (t61). A member that joined through seeds restarts with a hello
//! round too, under the Raft id the cluster allocated it, by which peers
//! remember its starts: both kinds of copy of its directory are refused
//! (t65, t67).

use std::time::{Duration, Instant};

use crate::members::{
    copy_dir, grants_after, leader_now, members_until, membership_args, refused_start, Loaded,
};
use crate::procs::{granted_token, Spec};

const TTL: Duration = Duration::from_millis(1500);
const BOUND: Duration = Duration::from_secs(20);
/// A durable restart with one peer dead for good must be ready within
/// this: a majority of voters answers the hello at once, the dead one is
/// waited for one grace second (`RESTART_GRACE`), then an election.
const RESTART_BOUND: Duration = Duration::from_secs(8);

/// `n` durable nodes with the membership timings every case here uses.
fn spec(n: usize) -> Spec {
    let mut spec = Spec::new(n, TTL, true);
    spec.extra_args = membership_args(
        Duration::from_millis(3000),
        Duration::from_millis(1000),
        None,
    );
    spec
}

/// Three durable founders under load, once all three are live voters.
async fn three_voters() -> Loaded {
    let c = Loaded::start(spec(3), 3).await;
    members_until(&c.shared, &c.up(), BOUND, "three live voters", |m| {
        m.live_voters_are(3)
    })
    .await;
    c
}

/// Three durable founders under load and node 3, a member that joined
/// through founder 0's address (not a founder), once all four are live.
async fn with_a_joined_member() -> Loaded {
    let mut spec = spec(4);
    spec.seeds[3] = Some(spec.addr(0));
    let mut c = Loaded::start(spec, 4).await;
    c.start_node(3, BOUND).await;
    members_until(&c.shared, &c.up(), BOUND, "four live members", |m| {
        m.0.len() == 4 && m.0.iter().all(|n| n.live)
    })
    .await;
    c
}

/// Copies node `i`'s data directory while it runs, consistently: the
/// process is stopped (SIGSTOP) for the copy, as a volume or VM snapshot
/// would freeze it, and continued.
fn snapshot_dir(c: &Loaded, i: usize, to: &std::path::Path) {
    let pid = c.shared.views.lock()[i].pid;
    let signal = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {pid}");
    };
    signal("STOP");
    copy_dir(&c.spec.data_dir(i), to);
    signal("CONT");
}

/// Replaces node `i`'s data directory with the copy at `from`.
fn restore(c: &Loaded, i: usize, from: &std::path::Path) {
    let dir = c.spec.data_dir(i);
    std::fs::remove_dir_all(&dir).expect("remove the directory");
    copy_dir(from, &dir);
}

/// Starts node `i` from the copy restored in its directory and checks that
/// the start is refused within `bound`, its message holding each of `why`;
/// then that the others go on granting, and judges the run's history
/// (`case` names it).
async fn refused(c: Loaded, i: usize, bound: Duration, why: &[&str], case: &str) {
    let at = Instant::now();
    let (status, stderr) = refused_start(&c.spec, i, bound).await;
    println!(
        "{case}: the restored copy of node {i} ended after {:?} with {status}: {stderr}",
        at.elapsed()
    );
    assert!(!status.success(), "the restored copy started: {stderr}");
    assert!(
        why.iter().all(|w| stderr.contains(w)),
        "the refusal does not say why: {stderr}"
    );
    grants_after(&c.shared, 10, BOUND, "after the refusal").await;
    c.finish(case, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_issue_9_a_restored_copy_of_a_founders_directory_is_refused() {
    let started = Instant::now();
    let mut c = three_voters().await;
    let victim = 1;
    let copy = c.spec.dir.path().join("copy-of-proc-1");
    snapshot_dir(&c, victim, &copy);
    // It runs on after the copy, acknowledging entries the copy misses,
    // and starts once more from its real directory: that start is the
    // later boot the peers remember.
    grants_after(&c.shared, 20, BOUND, "after the copy").await;
    c.kill(victim).await;
    c.start_node(victim, BOUND).await;
    grants_after(&c.shared, 20, BOUND, "after the real restart").await;
    c.kill(victim).await;
    restore(&c, victim, &copy);
    let why = ["older copy of itself"];
    refused(c, victim, BOUND, &why, "t60 restored copy").await;
    println!("t60: done in {:?}", started.elapsed());
}

/// P6 as the design states it: copy a voter's directory while it runs,
/// let it run on (it acknowledges more entries), kill it, start it from
/// the copy. The copy's boot is the one the real next start would have,
/// so the boot count lets it in; its hello also says where its log ends,
/// and the leader refuses a log that ends below what the node acknowledged
/// to it (`core/src/raft/bootstrap/hello.rs`). The victim is a follower:
/// only the leader that recorded the acknowledgements can tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t61_issue_9_a_copy_of_a_running_node_restored_at_once_is_refused() {
    let started = Instant::now();
    let mut c = three_voters().await;
    let leader = leader_now(&c.shared, BOUND).await;
    let victim = (leader + 1) % 3;
    let copy = c.spec.dir.path().join("copy-of-a-follower");
    snapshot_dir(&c, victim, &copy);
    grants_after(&c.shared, 50, BOUND, "after the copy").await;
    c.kill(victim).await;
    restore(&c, victim, &copy);
    println!("t61: node {victim} is a follower (leader {leader})");
    let why = ["older copy of itself", "acknowledged log entry"];
    refused(
        c,
        victim,
        Duration::from_secs(10),
        &why,
        "t61 restored copy",
    )
    .await;
    println!("t61: done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t62_issue_9_a_durable_restart_needs_only_a_majority_while_a_peer_is_dead_for_good() {
    let started = Instant::now();
    let mut c = three_voters().await;
    // Node 2 dies for good; node 1 restarts from its disk.
    c.kill(2).await;
    grants_after(&c.shared, 10, BOUND, "after node 2 died").await;
    c.kill(1).await;
    let (mut p, ready) = c.spawn_ready(1, RESTART_BOUND).await;
    let at = Instant::now();
    let line = p.ask("lock solo 5000").await;
    let token = granted_token(&line);
    assert_eq!(p.ask("unlock solo").await, "released solo");
    println!(
        "t62: node 1 restarted from its disk with node 2 dead: ready after {ready:?}, granted token {token} {:?} later",
        at.elapsed()
    );
    c.adopt(1, p);
    grants_after(&c.shared, 10, BOUND, "after the restart").await;
    let (m, _) = members_until(&c.shared, &c.up(), BOUND, "two live voters", |m| {
        m.voter_ids().len() == 3 && m.0.iter().filter(|n| n.voter && n.live).count() == 2
    })
    .await;
    println!("t62: members: {m}");
    c.finish("t62 restart with a dead peer", 15).await;
    println!("t62: done in {:?}", started.elapsed());
}

/// P6 for a member that joined through a seed (an autoscaled instance,
/// not a founder): a copy of its running directory, restored at once, has
/// the newest boot; the leader refuses its log, which ends below what the
/// member acknowledged. Before its restarts said hello (they skipped the
/// round: peers remembered starts by name, under which a founder of that
/// name may have had another incarnation), the copy was let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t65_issue_9_a_copy_of_a_joined_members_directory_is_refused() {
    let started = Instant::now();
    let mut c = with_a_joined_member().await;
    let copy = c.spec.dir.path().join("copy-of-a-joined-member");
    snapshot_dir(&c, 3, &copy);
    grants_after(&c.shared, 50, BOUND, "after the copy").await;
    c.kill(3).await;
    restore(&c, 3, &copy);
    let why = ["older copy of itself", "acknowledged log entry"];
    let case = "t65 restored copy of a joined member";
    refused(c, 3, Duration::from_secs(10), &why, case).await;
    println!("t65: done in {:?}", started.elapsed());
}

/// t60 for a member that joined through a seed: a copy of its directory
/// restored after the real directory started again carries an older boot
/// count, and the peers that saw the later start (remembered under the
/// Raft id the cluster allocated it, not its name) refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t67_issue_9_an_older_copy_of_a_joined_members_directory_is_refused() {
    let started = Instant::now();
    let mut c = with_a_joined_member().await;
    let copy = c.spec.dir.path().join("older-copy-of-a-joined-member");
    snapshot_dir(&c, 3, &copy);
    grants_after(&c.shared, 20, BOUND, "after the copy").await;
    c.kill(3).await;
    c.start_node(3, BOUND).await;
    grants_after(&c.shared, 20, BOUND, "after the real restart").await;
    c.kill(3).await;
    restore(&c, 3, &copy);
    let why = ["older copy of itself", "empty its data directory"];
    refused(c, 3, BOUND, &why, "t67 older copy of a joined member").await;
    println!("t67: done in {:?}", started.elapsed());
}
