//! Issue 9: a member of another cluster at an address this node recorded
//! must not make a restarting node give up its id. Two clusters made with
//! one CA (a test cluster and the real one, or two deployments of one
//! chart), and a pod of the other bound where a member of this one used to
//! be, with that member's name (StatefulSet names and reused pod IPs). A
//! durable node restarting through its recorded peers said hello to it,
//! was told "join instead" (it is no member there), took that as "the
//! cluster removed your id while you were away", marked its directory and
//! (with `rejoin_when_removed`) emptied it and joined the other cluster.
//! Now `JoinInstead` carries the sender's cluster id, and a node whose
//! directory records another one ignores it (and logs a WARN).

use std::path::Path;
use std::time::Duration;

use peerlock::certs::ClusterCa;

use crate::common::{init_tracing, member_builder, rebind, sockets, start_ready, within};

fn durable(
    ca: &ClusterCa,
    i: usize,
    sock: std::net::UdpSocket,
    dir: &Path,
) -> peerlock::NodeBuilder {
    member_builder(ca, &format!("node-{i}"), sock).data_dir(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t132_issue_9_join_instead_from_another_cluster_does_not_remove_a_restarting_node() {
    init_tracing();
    let base = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3).map(|i| base.path().join(format!("n{i}"))).collect();
    let ca = ClusterCa::generate("t132").unwrap();

    // Cluster A: three durable founders; a lock taken, then every node down.
    let (socks, addrs) = sockets(3);
    let builders = socks.into_iter().enumerate();
    let nodes =
        start_ready(builders.map(|(i, s)| durable(&ca, i, s, &dirs[i]).peers(addrs.clone()))).await;
    let id0 = nodes[0].status().id;
    let token = within(nodes[0].lock("kept")).await.unwrap().token();
    for n in &nodes {
        peerlock::testing::crash(n).await;
    }

    // Cluster B: one node named "node-1", at node-1's address, its own directory.
    let other = durable(&ca, 1, rebind(addrs[1]).await, &base.path().join("other"))
        .peers([addrs[1]])
        .start()
        .await
        .unwrap();
    within(other.ready()).await.unwrap();

    // Node 0 restarts alone: the only peer that answers is B's node, which
    // tells it to join. Before, its start ended there (removed, or joined B).
    let b0 = durable(&ca, 0, rebind(addrs[0]).await, &dirs[0]).peers(addrs.clone());
    let start0 = tokio::spawn(b0.start());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early = start0.is_finished();
    // B's node stays: it drops A's Raft messages (node-0 and node-2 are
    // no members of B), and A's two nodes are a majority of three.
    let b2 = durable(&ca, 2, rebind(addrs[2]).await, &dirs[2]).peers(addrs.clone());
    let node2 = within(b2.start()).await.expect("node 2 restarts");
    let node0 = match within(start0).await.unwrap() {
        Ok(n) => n,
        Err(e) => panic!("node 0's restart failed (finished within 2 s: {early}): {e}"),
    };
    within(node0.ready()).await.unwrap();
    within(node2.ready()).await.unwrap();
    assert_eq!(node0.status().id, id0, "node 0 gave up its id");
    let next = within(node0.lock("other")).await.unwrap().token();
    assert!(
        next > token,
        "node 0 is not in its old cluster: {token} -> {next}"
    );
    assert!(
        other.status().members.len() == 1,
        "B changed: {:?}",
        other.status().members
    );
    for n in [&node0, &node2, &other] {
        peerlock::testing::crash(n).await;
    }
}
