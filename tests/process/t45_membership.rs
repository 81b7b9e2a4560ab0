//! Issue 9 across real processes and a real network fault: five node
//! processes in network namespaces (as in `t40_netns`), three voters
//! (`--max-voters 3`), `dead_after` 3 s, `stabilization` 1 s, TTL 1.5 s,
//! a client contending for one lock on every node. A voter cut off by
//! nftables past `dead_after` must be replaced by a learner (the voters
//! three and live again, the cut-off one a learner) while the majority
//! side keeps granting; healed, it must come back live as a learner. Then
//! the same with the leader. Each is cut off holding the lock, stalled in
//! its critical section, and writes late: the resource must refuse it.
//! The merged history must pass the checker.
//!
//! Needs root, `ip netns` and `nft`; otherwise prints `SKIPPED: <reason>`
//! to the raw stderr and returns.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::procs::{Gone, Spec};
use crate::t40_netns::{ip_of, missing_capability, remove_stale, Netns};
use crate::workload::{contend, judge, Client, Shared};

const TTL: Duration = Duration::from_millis(1500);
const NODES: usize = 5;
const PORT: u16 = 7100;
const LOCK: &str = "x";
const DEAD_AFTER: Duration = Duration::from_millis(3000);
/// How long a node is cut off: well past `dead_after`.
const FAULT: Duration = Duration::from_secs(8);
/// The voters must be whole again within `dead_after` and this.
const REPLACE_SLACK: Duration = Duration::from_secs(5);
/// A healed node must be seen live again within this.
const RETURN_BOUND: Duration = Duration::from_secs(10);
/// The longest the majority side may go without a grant while a node is
/// cut off (a lost holder's session expires after a TTL; a lost leader
/// also costs an election).
const GRANT_GAP: Duration = Duration::from_secs(5);

/// One member as `members` reports it: (voter, live).
type Members = BTreeMap<usize, (bool, bool)>;

/// Parses `members proc-0=voter,live proc-1=learner,silent ...`.
fn parse_members(line: &str) -> Option<Members> {
    let rest = line.strip_prefix("members ")?;
    let mut out = Members::new();
    for m in rest.split_whitespace() {
        let (name, state) = m.split_once('=')?;
        let i: usize = name.strip_prefix("proc-")?.parse().ok()?;
        let (role, live) = state.split_once(',')?;
        out.insert(i, (role == "voter", live == "live"));
    }
    Some(out)
}

fn voters(m: &Members) -> Vec<usize> {
    m.iter().filter(|(_, (v, _))| *v).map(|(i, _)| *i).collect()
}

/// Polls `members` on `ask` (nodes other than a cut-off one) until `ok`
/// holds; the members then and how long it took, or a panic naming the
/// last answer after `bound`.
async fn members_until(
    shared: &Shared,
    ask: &[usize],
    bound: Duration,
    what: &str,
    ok: impl Fn(&Members) -> bool,
) -> (Members, Duration) {
    let start = Instant::now();
    let mut last = String::from("(no answer)");
    loop {
        if let Some((_, line)) = shared.members(ask, Duration::from_secs(3)).await {
            if let Some(m) = parse_members(&line) {
                if ok(&m) {
                    return (m, start.elapsed());
                }
            }
            last = line;
        }
        assert!(
            start.elapsed() < bound,
            "{what}: not within {bound:?}; last answer {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Samples the grant counter until `until`; the longest stretch without a
/// new grant, and how many were granted.
async fn watch_grants(shared: &Shared, until: Instant) -> (Duration, u64) {
    let first = shared.grants.load(Ordering::Relaxed);
    let (mut last, mut since, mut gap) = (first, Instant::now(), Duration::ZERO);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = shared.grants.load(Ordering::Relaxed);
        if now > last {
            (last, since) = (now, Instant::now());
        }
        gap = gap.max(since.elapsed());
    }
    (gap, last - first)
}

fn skip(reason: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: t45_issue_9_an_isolated_voter_is_replaced_and_returns_as_a_learner: {reason}"
    );
}

type Task = JoinHandle<(Client, Option<Gone>)>;

/// Cuts `victim` off for [`FAULT`], checks it is replaced and the majority
/// keeps granting, heals, checks it returns as a live learner.
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
    net.isolate(victim);
    let cut = Instant::now();
    let watch = watch_grants(shared, cut + FAULT);
    let replaced = members_until(shared, &others, DEAD_AFTER + REPLACE_SLACK, what, |m| {
        let v = voters(m);
        v.len() == 3 && !v.contains(&victim) && v.iter().all(|i| m[i].1) && m.contains_key(&victim)
    });
    let ((gap, granted), (after, took)) = tokio::join!(watch, replaced);
    println!(
        "t45: {what} (node {victim}): replaced after {took:?} (voters {:?}); {granted} grants in {:?}, longest gap {gap:?}",
        voters(&after),
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
            !m.get(&victim).is_some_and(|(voter, _)| *voter),
            "{what}: stale read: the healed node {victim} reports itself a voter after its replacement committed: {m:?}"
        );
        m.get(&victim) == Some(&(false, true))
    })
    .await;
    println!(
        "t45: node {victim} itself answers members as a live learner after {took:?} (voters {:?})",
        voters(&own)
    );
    let (back, _) = members_until(shared, &others, RETURN_BOUND, "healed node live", |m| {
        m.get(&victim) == Some(&(false, true)) && voters(m).iter().all(|i| m[i].1)
    })
    .await;
    println!(
        "t45: the majority sees node {victim} live as a learner {:?} after the heal (voters {:?})",
        healed.elapsed(),
        voters(&back)
    );
    assert_eq!(
        voters(&own),
        voters(&back),
        "the healed node and the majority disagree"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t45_issue_9_an_isolated_voter_is_replaced_and_returns_as_a_learner() {
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
    spec.extra_args = [
        "--max-voters",
        "3",
        "--dead-after-ms",
        &DEAD_AFTER.as_millis().to_string(),
        "--stabilization-ms",
        "1000",
    ]
    .map(str::to_owned)
    .to_vec();
    for (i, ns) in net.nodes.iter().enumerate() {
        spec.wrap[i] = ["ip", "netns", "exec", ns.as_str()]
            .map(str::to_owned)
            .to_vec();
    }
    let mut procs = Vec::new();
    for i in 0..NODES {
        let p = spec.spawn(i);
        net.pids.lock().push(p.pid());
        procs.push(p);
    }
    for (i, p) in procs.iter_mut().enumerate() {
        let line = p
            .try_next_line(Duration::from_secs(60))
            .await
            .unwrap_or_else(|g| panic!("node {i} in its namespace never got ready: {g:?}"));
        assert!(line.starts_with("ready "), "node {i}: {line:?}");
    }

    let shared = Shared::new(NODES, TTL);
    let tasks: Vec<Task> = procs
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let c = Client::new(&shared, i, p);
            tokio::spawn(contend(c, LOCK.to_owned(), TTL, Duration::from_millis(15)))
        })
        .collect();
    let all: Vec<usize> = (0..NODES).collect();
    let (m, _) = members_until(&shared, &all, RETURN_BOUND, "five live members", |m| {
        m.len() == NODES && voters(m).len() == 3 && m.values().all(|(_, live)| *live)
    })
    .await;
    println!("t45: started; voters {:?}", voters(&m));
    // Learners become eligible after `stabilization`.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let leader = leader_now(&shared).await;
    let (m, _) = members_until(&shared, &all, RETURN_BOUND, "members", |_| true).await;
    let victim = *voters(&m)
        .iter()
        .find(|&&i| i != leader)
        .expect("a voter other than the leader");
    isolate_and_return(&net, &shared, victim, "a follower voter cut off").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let leader = leader_now(&shared).await;
    isolate_and_return(&net, &shared, leader, "the leader cut off").await;
    let new = leader_now(&shared).await;
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

/// The node whose recent status says Leader in the highest term.
async fn leader_now(shared: &Arc<Shared>) -> usize {
    let start = Instant::now();
    loop {
        if let Some(l) = shared.leader(Duration::from_millis(1000)) {
            return l;
        }
        assert!(start.elapsed() < RETURN_BOUND, "no leader known");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
