//! Issue 9: a founder's durable restart needs a majority of the voters it
//! last recorded, not of the founding voters.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use peerlock::{MemberRole, MembershipConfig, Node};

use crate::common::{converge, init_tracing, rebind, sockets, within, WAIT};

fn start(
    ca: &peerlock::certs::ClusterCa,
    addrs: &[SocketAddr],
    base: &Path,
    i: usize,
    sock: UdpSocket,
) -> impl std::future::Future<Output = Result<Node, peerlock::Error>> {
    Node::builder()
        .socket(sock)
        .peers(addrs.to_vec())
        .max_voters(3)
        .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
        .data_dir(base.join(format!("n{i}")))
        .session_ttl(Duration::from_millis(1500))
        .raft_tick(Duration::from_millis(20))
        .membership(MembershipConfig {
            dead_after: Duration::from_secs(2),
            stabilization: Duration::from_secs(1),
            ..MembershipConfig::default()
        })
        .startup_timeout(WAIT)
        .start()
}

fn voters(node: &Node) -> Vec<peerlock::NodeId> {
    node.status()
        .members
        .iter()
        .filter(|m| m.role == MemberRole::Voter)
        .map(|m| m.id)
        .collect()
}

/// The simulator found it (membership seed 149): the hello round of a
/// founder's restart counted the founding voters, so once most of them had
/// left for good no founder could restart after a full power cut, though a
/// majority of the current voters came back. Five durable founders, three
/// voting; two founding voters die for good, one after the other, and are
/// replaced by the founding learners; every node is killed; the three
/// current voters restart from their disks: they take part and serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t64_issue_9_founders_restart_after_most_founding_voters_left_for_good() {
    init_tracing();
    let ca = peerlock::certs::ClusterCa::generate("founders").unwrap();
    let (socks, addrs) = sockets(5);
    let base = tempfile::tempdir().unwrap();
    let mut starts = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        starts.push(tokio::spawn(start(&ca, &addrs, base.path(), i, sock)));
    }
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for s in starts {
        nodes.push(Some(s.await.unwrap().expect("node starts")));
    }
    for n in nodes.iter().flatten() {
        within(n.ready()).await.expect("ready");
    }
    let index_of = |nodes: &[Option<Node>], id| {
        nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.status().id == id))
            .unwrap()
    };
    let founding: Vec<usize> = {
        let first = nodes[0].as_ref().unwrap();
        voters(first)
            .into_iter()
            .map(|id| index_of(&nodes, id))
            .collect()
    };
    assert_eq!(founding.len(), 3);
    // Two founding voters die for good, one at a time (each replacement
    // needs a live majority of the voters it leaves).
    let kept = founding[0];
    for (k, gone) in founding[1..].iter().enumerate() {
        peerlock::testing::crash(&nodes[*gone].take().unwrap()).await;
        let m = converge(nodes[kept].as_ref().unwrap(), 3, 1 - k).await;
        println!("t64: founding voter {gone} replaced: {m:?}");
    }
    let current: Vec<usize> = voters(nodes[kept].as_ref().unwrap())
        .into_iter()
        .map(|id| index_of(&nodes, id))
        .collect();
    assert_eq!(current.len(), 3);
    assert!(current.contains(&kept));
    // A full power cut.
    for n in nodes.iter_mut() {
        if let Some(n) = n.take() {
            peerlock::testing::crash(&n).await;
        }
    }
    // The current voters come back from their disks: only one of them is
    // a founding voter.
    let at = std::time::Instant::now();
    let mut starts = Vec::new();
    for i in &current {
        let sock = rebind(addrs[*i]).await;
        starts.push(tokio::spawn(start(&ca, &addrs, base.path(), *i, sock)));
    }
    let mut back = Vec::new();
    for s in starts {
        back.push(
            s.await
                .unwrap()
                .expect("a current voter restarts from its disk"),
        );
    }
    for n in &back {
        within(n.ready()).await.expect("ready");
    }
    println!(
        "t64: the three current voters are back after {:?}",
        at.elapsed()
    );
    let g = within(back[0].lock("after")).await.unwrap();
    within(g.unlock()).await.unwrap();
}
