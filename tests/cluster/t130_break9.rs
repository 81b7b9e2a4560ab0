//! Issue 9 tried as a newcomer would (helper break9, session 19): only the
//! README, the crate docs and `examples/node --help` were read. These
//! tests pin what works; the findings, each an ignored test that fails on
//! this code, are in `t130_break9_findings.rs`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::{Error, MemberRole, Node, Role};

use crate::common::{
    converge, in_memory_member, init_tracing, members_until, sockets, within, WAIT,
};

/// Starts `socks.len()` blank candidates `b9-N` with `bootstrap_expect(n)`
/// in the given order, each with ONE seed: the next candidate's address
/// (a ring, as a newcomer writes one address per instance), `delay` apart.
pub(crate) async fn form_ring(
    ca: &ClusterCa,
    n: usize,
    order: &[usize],
    delay: Duration,
) -> Vec<Node> {
    let (socks, addrs) = sockets(n);
    let mut socks: Vec<Option<UdpSocket>> = socks.into_iter().map(Some).collect();
    let mut starts = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        if k > 0 {
            tokio::time::sleep(delay).await;
        }
        let sock = socks[i].take().expect("each started once");
        let b = in_memory_member(ca, &format!("b9-{i}"), sock)
            .seeds([addrs[(i + 1) % n]])
            .bootstrap_expect(n);
        starts.push((i, tokio::spawn(b.start())));
    }
    let mut nodes: Vec<Option<Node>> = vec![None; n];
    for (i, s) in starts {
        nodes[i] = Some(s.await.unwrap().expect("a candidate starts"));
    }
    let nodes: Vec<Node> = nodes.into_iter().map(|n| n.expect("started")).collect();
    for n in &nodes {
        within(n.ready()).await.expect("ready");
    }
    nodes
}

/// What works (a, b, e, f): three instances with `bootstrap_expect(3)`,
/// each given one seed (the next one's address), started in reverse order
/// two seconds apart, found one cluster and reach three voters; a fourth
/// and a fifth started with only a seed address join and all five vote.
/// A lock held from the start stays held, and tokens rise throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_bootstrap_expect_with_one_seed_each_then_two_join_through_one_seed() {
    init_tracing();
    let ca = ClusterCa::generate("break9").unwrap();
    let nodes = form_ring(&ca, 3, &[2, 1, 0], Duration::from_secs(2)).await;
    let m = converge(&nodes[0], 3, 0).await;
    assert_eq!(m.len(), 3, "{m:?}");
    let held = within(nodes[1].lock("b9/held")).await.unwrap();
    let (socks, _) = sockets(2);
    let mut joiners = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let j = in_memory_member(&ca, &format!("b9-new-{i}"), sock)
            .seeds([nodes[2].local_addr()])
            .start()
            .await
            .expect("joins through one seed");
        within(j.ready()).await.expect("ready");
        joiners.push(j);
    }
    let m = converge(&joiners[1], 5, 0).await;
    assert_eq!(m.len(), 5, "{m:?}");
    assert!(held.is_held(), "a lock held across two joins stays held");
    let info = within(joiners[0].holder("b9/held")).await.unwrap();
    assert_eq!(info.map(|i| i.token), Some(held.token()));
    let later = within(joiners[1].lock("b9/other")).await.unwrap();
    assert!(later.token() > held.token(), "tokens rise across joins");
}

/// What works (d, f): the leader of three in-memory instances (1 s after
/// `members()` showed three voters; see finding 6) crashes and comes back blank at the same address, with the same name and the same
/// one seed. It joins under a new id, replaces its old self as a voter
/// within seconds (the same-name fast path), and the old id is removed; a
/// lock a follower held throughout stays held, and tokens keep rising.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_the_leader_restarted_blank_takes_its_place_back() {
    init_tracing();
    let ca = ClusterCa::generate("break9").unwrap();
    let mut nodes = form_ring(&ca, 3, &[0, 1, 2], Duration::ZERO).await;
    converge(&nodes[0], 3, 0).await;
    // Finding 6: right after `members()` first shows three voters, the
    // founder may still be the only voter of the outgoing half of a joint
    // change; a second later the promotion is done.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = (0..3)
        .find(|&i| nodes[i].status().role == Role::Leader)
        .expect("a leader among the three");
    let follower = (leader + 1) % 3;
    let held = within(nodes[follower].lock("b9/held")).await.unwrap();
    let old_id = nodes[leader].status().id;
    let addr = nodes[leader].local_addr();
    peerlock::testing::crash(&nodes[leader]).await;
    let sock = crate::common::rebind(addr).await;
    let t0 = Instant::now();
    let again = in_memory_member(&ca, &format!("b9-{leader}"), sock)
        .seeds([nodes[follower].local_addr()])
        .bootstrap_expect(3)
        .start()
        .await
        .expect("a blank restart of the leader joins");
    within(again.ready()).await.expect("ready");
    assert_ne!(again.status().id, old_id, "never the old id");
    nodes[leader] = again;
    let new_id = nodes[leader].status().id;
    let m = members_until(&nodes[follower], |m| {
        m.len() == 3
            && m.iter().all(|x| x.role == MemberRole::Voter && x.live)
            && m.iter().any(|x| x.id == new_id)
    })
    .await;
    assert!(m.iter().all(|x| x.id != old_id), "{m:?}");
    assert!(t0.elapsed() < WAIT, "converged in {:?}", t0.elapsed());
    assert!(held.is_held(), "the follower's lock stayed held");
    let next = within(nodes[leader].lock("b9/after")).await.unwrap();
    assert!(next.token() > held.token());
}

/// What works (g, h): candidates given different `bootstrap_expect`
/// counts stop with `Config` naming both counts and saying what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_different_bootstrap_expect_counts_are_refused_with_advice() {
    init_tracing();
    let ca = ClusterCa::generate("break9").unwrap();
    let (socks, addrs) = sockets(3);
    let mut starts = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let n = if i == 2 { 2 } else { 3 };
        let b = in_memory_member(&ca, &format!("b9-{i}"), sock)
            .seeds([addrs[(i + 1) % 3]])
            .bootstrap_expect(n);
        starts.push(tokio::spawn(b.start()));
    }
    let mut refused = 0;
    for s in starts {
        match within(s).await.unwrap() {
            Err(Error::Config(msg)) => {
                assert!(msg.contains("bootstrap_expect(2)"), "{msg}");
                assert!(msg.contains("bootstrap_expect(3)"), "{msg}");
                assert!(msg.contains("same bootstrap_expect"), "{msg}");
                refused += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(n) => peerlock::testing::crash(&n).await,
        }
    }
    assert!(refused >= 1, "at least the odd one out is refused");
}

/// What works (g): `max_voters(0)` and `max_voters(100)` are refused at
/// start with advice ("use 3 or 5").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_max_voters_out_of_range_is_refused() {
    init_tracing();
    let ca = ClusterCa::generate("break9").unwrap();
    for bad in [0, 100] {
        let (mut socks, _) = sockets(1);
        let r = in_memory_member(&ca, "b9-0", socks.remove(0))
            .bootstrap_expect(1)
            .max_voters(bad)
            .start()
            .await;
        match r {
            Err(Error::Config(msg)) => assert!(msg.contains("use 3 or 5"), "{msg}"),
            other => panic!("max_voters({bad}): {:?}", other.map(|n| n.status())),
        }
    }
}

/// (a, e) Five blank instances started at once with `bootstrap_expect(3)`
/// and ONE seed each (a ring). The README: "Two clusters would need `2n`
/// blank instances before the first answers", so five (< 6) must make
/// one cluster: every node's `members()` lists all five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_five_ring_seeded_candidates_expecting_three_make_one_cluster() {
    init_tracing();
    let ca = ClusterCa::generate("break9").unwrap();
    let (socks, addrs) = sockets(5);
    let mut starts = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let b = in_memory_member(&ca, &format!("b9-{i}"), sock)
            .seeds([addrs[(i + 1) % 5]])
            .bootstrap_expect(3);
        starts.push(tokio::spawn(b.start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        match within(s).await.unwrap() {
            Ok(n) => nodes.push(n),
            Err(e) => panic!("a candidate failed: {e}"),
        }
    }
    for n in &nodes {
        within(n.ready()).await.expect("ready");
    }
    for n in &nodes {
        let m = members_until(n, |m| m.len() == 5).await;
        assert_eq!(m.len(), 5, "{m:?}");
    }
}

/// (d) A crash loop: a follower crashes, comes back blank, crashes again
/// as soon as its start returns, and comes back blank once more (a pod in
/// `CrashLoopBackOff`). The cluster must end with three live voters and
/// three members (both dead incarnations removed), with a lock held
/// elsewhere kept throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_a_crash_looping_blank_follower_converges() {
    init_tracing();
    let ca = ClusterCa::generate("break9").unwrap();
    let mut nodes = form_ring(&ca, 3, &[0, 1, 2], Duration::ZERO).await;
    converge(&nodes[0], 3, 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // finding 6
    let leader = (0..3)
        .find(|&i| nodes[i].status().role == Role::Leader)
        .expect("a leader");
    let f = (leader + 1) % 3;
    let held = within(nodes[leader].lock("b9/held")).await.unwrap();
    let addr = nodes[f].local_addr();
    for round in 0..2 {
        peerlock::testing::crash(&nodes[f]).await;
        let sock = crate::common::rebind(addr).await;
        nodes[f] = in_memory_member(&ca, &format!("b9-{f}"), sock)
            .seeds([nodes[leader].local_addr()])
            .bootstrap_expect(3)
            .start()
            .await
            .unwrap_or_else(|e| panic!("blank start {round}: {e}"));
    }
    within(nodes[f].ready()).await.expect("ready");
    let m = members_until(&nodes[leader], |m| {
        m.len() == 3 && m.iter().all(|x| x.role == MemberRole::Voter && x.live)
    })
    .await;
    assert!(m.iter().any(|x| x.id == nodes[f].status().id), "{m:?}");
    assert!(held.is_held());
}

/// (c, d) A rolling restart of three in-memory instances with no spare
/// (no surge): each in turn is shut down gracefully (it leaves; the two
/// left keep one voter and one learner, as the README says for two) and
/// started again blank with the same name and one seed. Three live voters
/// and three members after every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_a_graceful_rolling_restart_of_three_without_surge() {
    init_tracing();
    let ca = ClusterCa::generate("break9").unwrap();
    let mut nodes = form_ring(&ca, 3, &[0, 1, 2], Duration::ZERO).await;
    converge(&nodes[0], 3, 0).await;
    for i in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await; // finding 6
        let addr = nodes[i].local_addr();
        within(nodes[i].shutdown())
            .await
            .expect("graceful shutdown");
        let other = (i + 1) % 3;
        let sock = crate::common::rebind(addr).await;
        nodes[i] = in_memory_member(&ca, &format!("b9-{i}"), sock)
            .seeds([nodes[other].local_addr()])
            .bootstrap_expect(3)
            .start()
            .await
            .unwrap_or_else(|e| panic!("step {i}: {e}"));
        within(nodes[i].ready()).await.expect("ready");
        let m = members_until(&nodes[other], |m| {
            m.len() == 3 && m.iter().all(|x| x.role == MemberRole::Voter && x.live)
        })
        .await;
        assert!(
            m.iter().any(|x| x.id == nodes[i].status().id),
            "step {i}: {m:?}"
        );
    }
}

/// (b) The README: "A node started with `.peers(..)` that finds the
/// cluster already running (a fourth instance) joins the same way", here
/// for a cluster formed with `bootstrap_expect(3)`: a fourth instance
/// given the static list of the three and itself joins as a fourth member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_a_fourth_with_a_static_peer_list_joins_a_bootstrapped_cluster() {
    init_tracing();
    let ca = ClusterCa::generate("break9").unwrap();
    let nodes = form_ring(&ca, 3, &[0, 1, 2], Duration::ZERO).await;
    converge(&nodes[0], 3, 0).await;
    let (mut s, a) = sockets(1);
    let mut peers: Vec<_> = nodes.iter().map(Node::local_addr).collect();
    peers.push(a[0]);
    let fourth = in_memory_member(&ca, "b9-3", s.remove(0))
        .peers(peers)
        .start()
        .await
        .expect("a fourth with peers joins");
    within(fourth.ready()).await.expect("ready");
    let m = members_until(&nodes[0], |m| m.len() == 4 && m.iter().all(|x| x.live)).await;
    assert!(m.iter().any(|x| x.id == fourth.status().id), "{m:?}");
}
