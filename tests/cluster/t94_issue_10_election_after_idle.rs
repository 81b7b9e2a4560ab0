//! Issue 10, connections on demand: a measurement, not a timed test (run
//! with `--ignored --nocapture`). Five in-memory nodes at the default tick
//! and TTL sit idle for longer than the transport's `IDLE_CLOSE`, so the
//! followers' connections with each other are closed; the leader is
//! killed, and the time until a survivor leads (and until a follower's
//! acquire succeeds) is printed. Its vote requests now open connections
//! first (a dial, or a dial request and a dial). Asserts only that a leader
//! comes back within the tests' bound.

use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::Node;

use crate::common::{init_tracing, sockets, wait_until, within, WAIT};

const NODES: usize = 5;
/// Trials (`PEERLOCK_TRIALS`, default 5).
fn trials() -> usize {
    std::env::var("PEERLOCK_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1)
}

async fn cluster() -> Vec<Node> {
    init_tracing();
    let ca = ClusterCa::generate("election-idle").unwrap();
    let (socks, addrs) = sockets(NODES);
    let mut starts = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let tls = ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap();
        let builder = Node::builder()
            .socket(sock)
            .peers(addrs.clone())
            .tls(tls)
            .in_memory()
            .startup_timeout(WAIT);
        starts.push(tokio::spawn(builder.start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().expect("node starts"));
    }
    for n in &nodes {
        within(n.ready()).await.expect("node ready");
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints election times after idle"]
async fn t94_issue_10_election_time_after_a_leader_crash_on_idle_pairs() {
    let mut leads = Vec::new();
    let mut grants = Vec::new();
    let trials = trials();
    for trial in 0..trials {
        let nodes = cluster().await;
        // Longer than the transport's IDLE_CLOSE (5 s).
        tokio::time::sleep(Duration::from_secs(7)).await;
        let leader = wait_until(|| nodes.iter().position(|n| n.status().is_leader())).await;
        let term = nodes[leader].status().term;
        let killed = Instant::now();
        peerlock::testing::crash(&nodes[leader]).await;
        let next = wait_until(|| {
            nodes
                .iter()
                .enumerate()
                .position(|(i, n)| i != leader && n.status().is_leader() && n.status().term > term)
        })
        .await;
        let lead = killed.elapsed();
        let follower = (0..NODES).find(|&i| i != leader && i != next).unwrap();
        within(nodes[follower].with_lock(&format!("after/{trial}"), async |_| ()))
            .await
            .unwrap();
        let grant = killed.elapsed();
        println!("trial {trial}: new leader after {lead:?}, a follower's lock after {grant:?}");
        leads.push(lead);
        grants.push(grant);
        for (i, n) in nodes.iter().enumerate() {
            if i != leader {
                peerlock::testing::crash(n).await;
            }
        }
    }
    leads.sort();
    grants.sort();
    println!(
        "election after a leader crash, {trials} trials: median {:?} (range {:?} - {:?}); follower lock median {:?} (range {:?} - {:?})",
        leads[trials / 2],
        leads[0],
        leads[trials - 1],
        grants[trials / 2],
        grants[0],
        grants[trials - 1]
    );
}
