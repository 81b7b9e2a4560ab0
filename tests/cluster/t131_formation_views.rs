//! Issue 9: candidates whose seeds each show them a part of the
//! deployment still form one cluster. Forming nodes tell each other the
//! peers they know (`membership::formation`, rule 2), so the set each
//! sees grows to the whole deployment before the stable margin ends.
//! Before, a candidate saw only its seeds and whoever dialed it: with
//! `bootstrap_expect` equal to the deployment, nobody ever saw enough
//! candidates to promise, and the start failed at `startup_timeout`.

use std::time::Instant;

use peerlock::certs::ClusterCa;
use peerlock::Node;

use crate::common::{in_memory_member, init_tracing, members_until, sockets, within, WAIT};

/// Starts `n` blank candidates `f-N` with `bootstrap_expect(n)`, node `i`
/// given the seed `seed(i)`, all at once; returns them once every start
/// returned (a start that fails fails the test, naming the error).
async fn form(n: usize, seed: impl Fn(usize) -> usize) -> Vec<Node> {
    init_tracing();
    let ca = ClusterCa::generate("views").unwrap();
    let (socks, addrs) = sockets(n);
    let mut starts = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let b = in_memory_member(&ca, &format!("f-{i}"), sock)
            .seeds([addrs[seed(i)]])
            .bootstrap_expect(n);
        starts.push(tokio::spawn(b.start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        match within(s).await.unwrap() {
            Ok(node) => nodes.push(node),
            Err(e) => panic!("a candidate failed: {e}"),
        }
    }
    nodes
}

/// Every node ends in one cluster of `n` members.
async fn one_cluster_of(nodes: &[Node], n: usize) {
    for node in nodes {
        within(node.ready()).await.expect("ready");
    }
    for node in nodes {
        let m = members_until(node, |m| m.len() == n).await;
        assert_eq!(m.len(), n, "{m:?}");
    }
}

/// A ring: each of five candidates given the next one's address, each
/// expecting all five. Each first sees three (itself, its seed, and the
/// one seeded with it). Failed on the old code at the start-up deadline
/// ("this node saw 3").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t131_issue_9_five_candidates_seeded_in_a_ring_expecting_five_form_one_cluster() {
    let t0 = Instant::now();
    let nodes = form(5, |i| (i + 1) % 5).await;
    one_cluster_of(&nodes, 5).await;
    assert!(t0.elapsed() < WAIT, "formed in {:?}", t0.elapsed());
}

/// Every instance given the first instance's address as its only seed (a
/// StatefulSet's `pod-0`), the first one its own: the others first see
/// only it. Failed on the old code at the start-up deadline ("this node
/// saw 2").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t131_issue_9_candidates_seeded_with_the_first_one_only_form_one_cluster() {
    let nodes = form(4, |_| 0).await;
    one_cluster_of(&nodes, 4).await;
}
